"""`manage.py runstack` for real: web server, Celery worker and beat, demo agents; SIGINT stops every process.

Runs on the embedded defaults (SQLite and the filesystem broker in a temporary RIGSHIFT_VAR_DIR), whatever
DATABASE_URL/REDIS_URL the suite itself uses, so it never touches a shared database.
"""

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

pytestmark = pytest.mark.integration

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")
DEADLINE_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _http(url: str, data: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, Any]:
    body = json.dumps(data).encode() if data is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp_path = tmp_path_factory.mktemp("runstack")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER"}}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "1",
        "RIGSHIFT_VAR_DIR": str(tmp_path / "var"),
        "RIGSHIFT_HEARTBEAT_INTERVAL_S": "2",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    for command in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        subprocess.run([sys.executable, MANAGE, *command], env=env, check=True, timeout=240, capture_output=True)
    return env


@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = _free_port()
    log = tmp_path / "runstack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, MANAGE, "runstack", "--host", "127.0.0.1", "--port", str(port)],
            env=stack_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, port, log
    finally:
        if process.poll() is None:  # the test failed before stopping it: leave nothing behind
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for pgid in _pgids(log).values():
            if _alive(pgid):
                os.killpg(pgid, signal.SIGKILL)


def _pgids(log: Path) -> dict[str, int]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"started (\w+) pid=\d+ pgid=(\d+)", text)}


def _wait(predicate: Any, *, until: float, what: str, log: Path) -> Any:
    while time.monotonic() < until:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; runstack output:\n{log.read_text(errors='replace')[-4000:]}")


def test_runstack_serves_runs_tasks_keeps_demo_nodes_online_and_stops_everything(
    stack: tuple[subprocess.Popen[bytes], int, Path], stack_env: dict[str, str]
) -> None:
    process, port, log = stack
    until = time.monotonic() + DEADLINE_S
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            return _http(f"{base}/healthz")[0] == 200
        except OSError:
            return False

    _wait(healthy, until=until, what="/healthz", log=log)
    children = _wait(lambda: len(_pgids(log)) == 4 and _pgids(log), until=until, what="the demo agents", log=log)
    assert set(children) == {"web", "worker", "beat", "agents"}
    _wait(lambda: "demo logins" in log.read_text(errors="replace"), until=until, what="the banner", log=log)
    banner = log.read_text(errors="replace")
    for path in ("/provider/", "/app/", "/console/", "/admin/", "/api/docs/"):
        assert f"{base}{path}" in banner

    # The demo logins work.
    tokens = {}
    for username in ("demo-provider", "demo-customer", "admin"):
        status, body = _http(f"{base}/api/v1/auth/token/", {"username": username, "password": "rigshift-demo"})
        assert status in (200, 201) and body["token"].startswith("rs_"), (username, status)
        tokens[username] = body["token"]

    # A task round-trips through the broker and the real worker process.
    ping = subprocess.run(
        [sys.executable, MANAGE, "ping_worker", "--timeout", "20"],
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr

    # The demo agents heartbeat through the agent API.
    db = Path(stack_env["RIGSHIFT_VAR_DIR"]) / "db.sqlite3"

    def heartbeats() -> int:
        with sqlite3.connect(db, timeout=10) as conn:
            return int(conn.execute("SELECT COUNT(DISTINCT node_id) FROM marketplace_nodeheartbeat").fetchone()[0])

    _wait(lambda: heartbeats() >= 30, until=until, what="demo agents' heartbeats", log=log)

    # A job booked through the API is matched by the worker within moments and runs on the agent's next poll.
    job_body = {
        "name": "runstack-smoke",
        "gpu_count": 1,
        "min_gpu_ram": 24,
        "image": "ghcr.io/acme/train:1",
        "mode": "on_demand",
        "max_price": "5.00",
        "duration_hours": "0.05",
    }
    status, job = _http(f"{base}/api/v1/jobs/", job_body, token=tokens["demo-customer"])
    assert status == 201, (status, job, log.read_text(errors="replace")[-4000:])
    booked_at = time.monotonic()

    def job_state(*states: str) -> bool:
        _, current = _http(f"{base}/api/v1/jobs/{job['id']}/", token=tokens["demo-customer"])
        return current["state"] in states

    _wait(lambda: job_state("matched", "running"), until=until, what="the job to be matched", log=log)
    matched_after = time.monotonic() - booked_at
    assert matched_after < 5, f"matched after {matched_after:.1f}s"  # ~1 s here: debounce + broker poll
    _wait(lambda: job_state("running", "completed"), until=until, what="the agent to run the job", log=log)

    # Ctrl-C stops every process runstack started, and runstack exits 0.
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=max(5.0, until - time.monotonic() + 15)) == 0, log.read_text(errors="replace")[-3000:]
    assert {name: pgid for name, pgid in children.items() if _alive(pgid)} == {}
    assert "every process stopped" in log.read_text(errors="replace")

    # The books balance after the market has run.
    check = subprocess.run(
        [sys.executable, MANAGE, "ledger_check"], env=stack_env, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_child_that_dies_stops_the_stack_with_a_non_zero_exit(stack_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "runstack.log"
    with socket.socket() as busy:  # the web server cannot bind this port and exits at once
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, MANAGE, "runstack", "--host", "127.0.0.1", "--port", str(port)],
                env=stack_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            code = process.wait(timeout=45)
        finally:
            if process.poll() is None:
                process.kill()
            for pgid in _pgids(log).values():
                if _alive(pgid):
                    os.killpg(pgid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    assert code != 0, output
    assert "web exited with code" in output
    children = _pgids(log)
    assert {"web", "worker", "beat"} <= set(children)
    assert [name for name, pgid in children.items() if _alive(pgid)] == []
