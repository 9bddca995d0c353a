"""Production settings refuse to start without their secrets; the embedded defaults need none."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", **env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_production_refuses_to_start_without_secret_key(tmp_path: Path) -> None:
    result = _check({"DJANGO_DEBUG": "0", "RIGSHIFT_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_stripe_key_without_webhook_secret_is_refused(tmp_path: Path) -> None:
    result = _check({"STRIPE_SECRET_KEY": "sk_test_x", "RIGSHIFT_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET" in result.stderr


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    result = _check(
        {
            "DJANGO_DEBUG": "0",
            "SECRET_KEY": "a-long-random-production-secret-for-the-deploy-check-0123456789",
            "ALLOWED_HOSTS": "rigshift.example.com",
            "RIGSHIFT_VAR_DIR": str(tmp_path),
        },
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stderr


def test_embedded_defaults_need_no_environment(tmp_path: Path) -> None:
    result = _check({"RIGSHIFT_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def _database_settings(env: dict[str, str], tmp_path: Path) -> str:
    code = "import django; django.setup(); from django.conf import settings; d = settings.DATABASES['default']; "
    code += "print(d['OPTIONS'].get('pool'), d['CONN_MAX_AGE'])"
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DB_POOL"}}
    clean.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
            "SECRET_KEY": "a-long-random-production-secret-for-the-pool-check-0123456789",
            "RIGSHIFT_VAR_DIR": str(tmp_path),
            **env,
        }
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_production_postgresql_uses_psycopg_s_pool(tmp_path: Path) -> None:
    import psycopg_pool  # noqa: F401 — the pool needs it installed (requirements.txt)

    assert _database_settings({"DJANGO_DEBUG": "0"}, tmp_path).endswith(" 0")  # pooled: no persistent connections
    assert "'max_size': 8" in _database_settings({"DJANGO_DEBUG": "0"}, tmp_path)
    assert _database_settings({"DJANGO_DEBUG": "0", "DB_POOL": "0", "DB_CONN_MAX_AGE": "600"}, tmp_path) == "None 600"
    assert _database_settings({"DJANGO_DEBUG": "1"}, tmp_path).startswith("None")  # development: persistent
