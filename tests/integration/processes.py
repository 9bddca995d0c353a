"""Real processes for the integration tests: a private redis-server, Celery workers and a gunicorn web server,
all on the pytest test database (PostgreSQL). Each runs in its own session so it can be SIGKILLed as a group."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url() -> str:
    """The pytest test database (test_…), as a DATABASE_URL for child processes."""
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Proc:
    """A child process in its own session, its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group (a Celery worker's pool children too), at once, no cleanup."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=1)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.kill()


def redis_server_available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    """A private, non-persistent redis-server on a free port: killed and restarted by the test, nobody else's."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None

    def start(self) -> None:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.tmp),
        ]
        self.proc = Proc("redis", argv, env=dict(os.environ), log=self.tmp / "redis.log")
        wait_for(self.ping, timeout=15, what="redis-server", interval=0.05)

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:  # noqa: BLE001 — not up yet
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()


def child_env(*, redis_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CELERY_TASK_ALWAYS_EAGER", "PYTEST_CURRENT_TEST"}}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "RIGSHIFT_VAR_DIR": str(var_dir),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        # a matcher killed mid-round leaves its Redis lock behind: let it lapse quickly here (120 s by default)
        "RIGSHIFT_MATCH_LOCK_TTL_S": "5",
    }
    return env | extra


def celery_worker(name: str, *, env: dict[str, str], tmp: Path) -> Proc:
    """Start `celery -A config worker` (one prefork child) and wait until it consumes."""
    argv = [
        str(BIN / "celery"),
        "-A",
        "config",
        "worker",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}@faults",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    proc = Proc(name, argv, env=env, log=tmp / f"{name}.log")

    def ready() -> bool:
        assert proc.alive(), proc.output()[-3000:]
        return " ready." in proc.output()

    wait_for(ready, timeout=60, what=f"Celery worker {name}")
    return proc


def web_server(*, env: dict[str, str], tmp: Path, threads: int = 2) -> tuple[Proc, str]:
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--timeout",
        "60",
    ]
    proc = Proc("web", argv, env=env, log=tmp / "web.log")
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.alive(), proc.output()[-3000:]
        try:
            return http(f"{base}/healthz")[0] in (200, 503)
        except OSError:
            return False

    wait_for(up, timeout=60, what="gunicorn")
    return proc, base


def http(
    url: str, data: dict[str, Any] | None = None, *, token: str | None = None, timeout: float = 15
) -> tuple[int, Any]:
    body = json.dumps(data).encode() if data is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw[:500].decode(errors="replace")


def send_task(redis_url: str, name: str, *args: Any) -> None:
    """Enqueue a task by name on the private broker (what beat or a web process would do)."""
    from celery import Celery

    app = Celery("faults-sender", broker=redis_url, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = True
    with app.connection_for_write() as conn:
        app.send_task(name, args=list(args), connection=conn)
