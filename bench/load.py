"""Load test: `python -m bench.load` (PostgreSQL + Redis; defaults: database bench_h13, Redis db 13).

Re-creates the database (--reuse keeps it), migrates, seeds the demo market (36 listed nodes), creates
funded customers and API tokens, starts gunicorn (gthread, --workers/--threads) and a Celery worker on it,
then runs bench/locustfile.py headless for --duration seconds at --rps requests per second: customers
searching offers and booking (each booking asks for a matching round, run by the worker), node agents
heartbeating, providers listing their nodes. Prints per-endpoint figures, the CPU time each party used
(the load generator shares the machine's cores with the server), and, last,
`p99_ms=… rps=… errors=…` where p99_ms is the worse of the booking and heartbeat p99.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
SECRET = "bench-load-secret-key-not-for-production-0123456789abcdef"
CUSTOMERS = 20
WALLET_MICROS = 100_000_000_000  # $100,000 per bench customer: thousands of bookings hold a few cents each


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(database_url: str, redis_url: str, *, debug: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_TASK_ALWAYS_EAGER"}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET,
        "DJANGO_DEBUG": "1" if debug else "0",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "DB_CONN_MAX_AGE": "600",  # no reconnects inside the run (and the backends' CPU stays countable)
    }
    return env


def _recreate_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def _prepare(env: dict[str, str], credentials: Path) -> None:
    """Migrate, seed, and write the locust credentials (runs in a child with DEBUG on, for the demo seed)."""
    manage = str(ROOT / "manage.py")
    subprocess.run([PY, manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    subprocess.run([PY, manage, "seed_demo"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    code = f"""
import json, django
django.setup()
from django.contrib.auth.models import User
from billing.services.wallet import wallet_credit
from broker.services.customers import customer_signup
from demo.seed import NODES, PROVIDERS, demo_node_token
from common.services import api_token_create
customers = []
for i in range({CUSTOMERS}):
    name = f"load-customer-{{i}}"
    user = User.objects.filter(username=name).first()
    if user is None:
        customer_signup(username=name, password="load-customer-pw", email=f"{{name}}@load.test", company="Load")
        user = User.objects.get(username=name)
    wallet_credit(user=user, amount_micros={WALLET_MICROS}, key=f"load:wallet:{{name}}", memo="load test credit")
    customers.append(api_token_create(user=user, name="load")[1])
providers = [api_token_create(user=User.objects.get(username=p.username), name="load")[1] for p in PROVIDERS]
nodes = [demo_node_token(node_name=n.name) for n in NODES]
json.dump({{"customers": customers, "providers": providers, "nodes": nodes}}, open({str(credentials)!r}, "w"))
"""
    subprocess.run([PY, "-c", code], env=env, check=True, cwd=ROOT)


def _flush_redis(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def _wait_http(url: str, timeout: float) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _postgres_cpu(database: str) -> float:
    """CPU seconds of the PostgreSQL backends serving `database` (other databases' backends excluded)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and database in " ".join(proc.info["cmdline"] or []):
                times = proc.cpu_times()
                total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _stats(prefix: str) -> dict[str, dict[str, Any]]:
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def main() -> None:  # noqa: C901 — to split into named steps
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_h13")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--rps", type=float, default=200.0)
    parser.add_argument("--duration", type=int, default=60, help="seconds")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker")
    parser.add_argument("--celery-concurrency", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="keep the database (skip drop/create and migrate)")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    env = _env(args.database_url, args.redis_url, debug=False)
    tmp = Path(tempfile.mkdtemp(prefix="rigshift-load-"))
    credentials = tmp / "credentials.json"
    if not args.reuse:
        _recreate_database(args.database_url)
    _flush_redis(args.redis_url)
    t0 = time.monotonic()
    _prepare(_env(args.database_url, args.redis_url, debug=True), credentials)
    print(f"setup: database ready in {time.monotonic() - t0:.1f} s", flush=True)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    logs = {name: (tmp / f"{name}.log").open("wb") for name in ("web", "worker", "locust")}
    web = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--worker-class",
            "gthread",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
        stdout=logs["web"],
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--concurrency",
            str(args.celery_concurrency),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        cwd=ROOT,
        stdout=logs["worker"],
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_http(f"{base}/healthz", 60)
        for _ in range(20):  # warm both gunicorn workers (imports, URL resolver, first connections)
            urllib.request.urlopen(f"{base}/api/v1/offers/?limit=5", timeout=10).read()
        database = args.database_url.rsplit("/", 1)[1]
        names = ("web", "worker", "locust", "postgres")
        prefix = str(tmp / "locust")
        locust_env = env | {"RIGSHIFT_LOAD_CREDENTIALS": str(credentials), "RIGSHIFT_LOAD_RPS": str(args.rps)}
        users = sum(_users(args.rps))
        cpu0 = {"web": _tree_cpu(web.pid), "worker": _tree_cpu(worker.pid), "postgres": _postgres_cpu(database)}
        wall0, load0 = time.monotonic(), os.getloadavg()[0]
        machine0 = psutil.cpu_times()
        load_proc = subprocess.Popen(
            [
                str(BIN / "locust"),
                "-f",
                str(ROOT / "bench" / "locustfile.py"),
                "--headless",
                "--host",
                base,
                "--users",
                str(users),
                "--spawn-rate",
                str(users),
                "--run-time",
                f"{args.duration}s",
                "--csv",
                prefix,
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            env=locust_env,
            cwd=ROOT,
            stdout=logs["locust"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        locust_cpu = 0.0
        while load_proc.poll() is None:
            locust_cpu = max(locust_cpu, _tree_cpu(load_proc.pid))
            time.sleep(0.5)
        wall = time.monotonic() - wall0
        machine1 = psutil.cpu_times()
        cpu = {
            "web": _tree_cpu(web.pid) - cpu0["web"],
            "worker": _tree_cpu(worker.pid) - cpu0["worker"],
            "postgres": _postgres_cpu(database) - cpu0["postgres"],
            "locust": locust_cpu,
        }
        busy = sum(getattr(machine1, f) - getattr(machine0, f) for f in ("user", "system", "nice", "irq", "softirq"))
        if load_proc.returncode not in (0, 1):  # locust exits 1 when any request failed
            logs["locust"].flush()
            print((tmp / "locust.log").read_text(errors="replace")[-3000:])
            raise SystemExit(f"locust exited with {load_proc.returncode}")
        stats = _stats(prefix)
        for name in ("offers search", "job book", "agent heartbeat", "provider nodes", "Aggregated"):
            row = stats.get(name)
            if row is None:
                continue
            print(
                f"{name:16s} n={row['Request Count']:>6s} fail={row['Failure Count']:>4s} "
                f"rps={float(row['Requests/s']):6.1f} p50={row['50%']:>5s} p95={row['95%']:>5s} "
                f"p99={row['99%']:>5s} max={float(row['Max Response Time']):.0f} ms"
            )
        cores = psutil.cpu_count() or 1
        print(
            f"cpu seconds over the run ({wall:.0f} s wall, {cores} cores = {wall * cores:.0f} core-s): "
            + " ".join(f"{k}={cpu[k]:.1f}" for k in names)
            + f" machine_busy={busy:.1f} others={max(0.0, busy - sum(cpu.values())):.1f}"
            + f" loadavg_before={load0:.1f} loadavg_after={os.getloadavg()[0]:.1f}"
        )
        failures = tmp / "locust_failures.csv"
        if failures.exists():
            rows = list(csv.DictReader(failures.open()))
            for row in rows[:5]:
                print(f"failure: {row['Method']} {row['Name']} x{row['Occurrences']}: {row['Error'][:200]}")
        agg = stats["Aggregated"]
        p99 = max(float(stats[n]["99%"]) for n in ("job book", "agent heartbeat") if n in stats)
        print(f"p99_ms={p99:.0f} rps={float(agg['Requests/s']):.1f} errors={int(agg['Failure Count'])}")
    finally:
        _stop(worker)
        _stop(web)
        for handle in logs.values():
            handle.close()
        if args.keep_logs:
            print(f"logs: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _users(rps: float) -> list[int]:
    """The fixed user counts the locustfile derives from the same rate (it reads RIGSHIFT_LOAD_RPS)."""
    weights, per_user = (0.45, 0.45, 0.10), 2.0
    return [max(1, round(rps * w / per_user)) for w in weights]


if __name__ == "__main__":
    main()
