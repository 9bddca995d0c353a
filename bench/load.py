"""Load test: `python -m bench.load` (PostgreSQL + Redis; defaults: database bench_h13, Redis db 13).

Re-creates the database (--reuse keeps it), migrates, seeds the demo market (36 listed nodes), creates
funded customers and API tokens and --heartbeat-nodes unlisted nodes with agent tokens, starts gunicorn
(gthread, --workers/--threads, production settings: psycopg pool) and a Celery worker on it, then, in ONE run
against the same server:

1. **the floor**: `wrk` on `GET /healthz/live` (a trivial view behind the whole middleware stack) for
   --floor-seconds: the web processes' CPU per request;
2. **the mix**: bench/locustfile.py headless (Locust's FastHttpUser) for --duration seconds at --rps requests
   per second: customers searching offers and booking (each booking asks for a matching round, run by the
   worker), node agents heartbeating, providers listing their nodes. Each endpoint's web CPU per request is its
   serving threads' CPU inside the middleware (the server's `rigshift_http_request_cpu_seconds`) plus the
   floor's CPU outside it (gunicorn, WSGI), printed as a multiple of the floor; the mix's is the web processes'
   CPU over all its requests;
3. **heartbeats only**: `wrk` with bench/wrk_heartbeat.lua over the heartbeat nodes, stepping the requests in
   flight (--heartbeat-steps) for --heartbeat-step-seconds each: the highest rate with p99 < 100 ms, no errors.

A shared machine's load moves the absolute figures; the multiples come from the same run. `wrk` (C, one or two
threads) leaves the cores to the server; without it (`apt-get install wrk`) phases 1 and 3 are skipped. Prints
the per-endpoint figures, the CPU time each party used, and, last, `p99_ms=… rps=… errors=… mix_x_floor=…
heartbeat_max_rps_p99_under_100ms=…` where p99_ms is the worse of the booking and heartbeat p99 in the mix.
"""

from __future__ import annotations

import argparse
import csv
import json
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


def _prepare(env: dict[str, str], credentials: Path, heartbeat_nodes: int = 0) -> None:
    """Migrate, seed, and write the locust credentials (runs in a child with DEBUG on, for the demo seed).

    `heartbeat_nodes` more nodes (unlisted, online, one GPU) get agent tokens for the heartbeat-only scenario:
    a fleet heartbeats through many node rows, and the per-node agent rate limit is never what stops it."""
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
from common.tokens import token_generate, token_hash
from marketplace.models import GPUModel, Node, Provider
provider = Provider.objects.order_by("pk").first()
gpu = GPUModel.objects.order_by("pk").first()
hb_nodes = [token_generate(prefix="rsn") for _ in range({heartbeat_nodes})]
Node.objects.bulk_create(
    [
        Node(provider=provider, name=f"load-hb-{{i}}", region="eu", country="DE", gpu_model=gpu, gpu_count=1,
             token_prefix=raw[:12], token_hash=token_hash(raw=raw), status="online", listed=False)
        for i, raw in enumerate(hb_nodes)
    ],
    batch_size=1000,
)
json.dump(
    {{"customers": customers, "providers": providers, "nodes": nodes, "heartbeat_nodes": hb_nodes}},
    open({str(credentials)!r}, "w"),
)
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


def _wrk(base: str, *, path: str, connections: int, seconds: int, script: str, args: list[str]) -> dict[str, float]:
    """Run wrk (closed loop: `connections` requests in flight) and return the figures its script prints."""
    threads = max(1, min(2, connections))
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script]
    command += [base + path]
    if args:
        command += ["--", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    figures: dict[str, float] = {}
    for token in done.stdout.split():
        name, sep, value = token.partition("=")
        if sep and name.startswith("wrk_"):
            figures[name[4:]] = float(value)
    if "requests" not in figures:
        raise SystemExit(f"wrk printed no figures: {done.stdout[-500:]} {done.stderr[-500:]}")
    figures["rps"] = figures["requests"] / max(figures["duration_s"], 1e-9)
    return figures


def _view_cpu(base: str) -> dict[str, tuple[float, float]]:
    """(requests, CPU seconds inside the middleware) per view, from the server's /metrics (shared through Redis)."""
    from prometheus_client.parser import text_string_to_metric_families

    time.sleep(1.2)  # every worker's buffered counts reach Redis (flushed every 0.5 s)
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            view = sample.labels.get("view", "")
            if sample.name == "rigshift_http_requests_total":
                counts[view] = counts.get(view, 0.0) + sample.value
            elif sample.name == "rigshift_http_request_cpu_seconds_total":
                cpu[view] = sample.value
    return {view: (counts.get(view, 0.0), cpu.get(view, 0.0)) for view in counts}


def _delta(after: dict[str, tuple[float, float]], before: dict[str, tuple[float, float]], view: str) -> float:
    """CPU seconds per request of `view` between two scrapes (0 when it served none)."""
    n = after.get(view, (0.0, 0.0))[0] - before.get(view, (0.0, 0.0))[0]
    cpu = after.get(view, (0.0, 0.0))[1] - before.get(view, (0.0, 0.0))[1]
    return cpu / n if n > 0 else 0.0


ENDPOINT_VIEWS = {
    "offers search": "api-offers",
    "job book": "api-jobs",
    "agent heartbeat": "agent-heartbeat",
    "provider nodes": "api-nodes",
}


def _floor_phase(base: str, web_pid: int, seconds: int) -> tuple[float, float, dict[str, float]]:
    """The trivial view through the same stack and server: (web CPU s/request, middleware CPU s/request, wrk)."""
    before, cpu0 = _view_cpu(base), _tree_cpu(web_pid)
    figures = _wrk(base, path="/healthz/live", connections=4, seconds=seconds, script="bench/wrk_report.lua", args=[])
    web = (_tree_cpu(web_pid) - cpu0) / max(figures["requests"], 1)
    inside = _delta(_view_cpu(base), before, "healthz-live")
    print(
        f"floor (GET /healthz/live, wrk -c4 {seconds} s): rps={figures['rps']:.0f} p99={figures['p99_ms']:.1f} ms "
        f"web_cpu_ms_per_request={web * 1000:.3f} (inside the middleware {inside * 1000:.3f})",
        flush=True,
    )
    return web, inside, figures


def _heartbeat_phase(base: str, web_pid: int, tokens: Path, seconds: int, steps: list[int]) -> float:
    """Heartbeats only, stepping the requests in flight up; the highest rate with p99 < 100 ms and no errors."""
    best = 0.0
    misses = 0
    for connections in steps:
        cpu0 = _tree_cpu(web_pid)
        seq_base = str(int(time.time() * 1_000_000))
        figures = _wrk(
            base,
            path="/api/v1/agent/heartbeat",
            connections=connections,
            seconds=seconds,
            script="bench/wrk_heartbeat.lua",
            args=[str(tokens), seq_base],
        )
        errors = int(figures["non2xx"] + figures["socket_errors"])
        web = (_tree_cpu(web_pid) - cpu0) / max(figures["requests"], 1)
        ok = figures["p99_ms"] < 100 and errors == 0
        print(
            f"heartbeat-only c={connections:3d}: rps={figures['rps']:6.0f} p50={figures['p50_ms']:6.1f} "
            f"p99={figures['p99_ms']:6.1f} ms errors={errors} web_cpu_ms_per_request={web * 1000:.3f}"
            + ("" if ok else "  (over 100 ms or errors)"),
            flush=True,
        )
        if ok:
            best = max(best, figures["rps"])
            misses = 0
        else:
            misses += 1
            if misses >= 2:
                break
    return best


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
    parser.add_argument("--floor-seconds", type=int, default=10, help="the trivial-view floor phase (wrk)")
    parser.add_argument("--heartbeat-nodes", type=int, default=2000, help="nodes of the heartbeat-only scenario")
    parser.add_argument("--heartbeat-step-seconds", type=int, default=8)
    parser.add_argument(
        "--heartbeat-steps", default="2,4,8,16,32,64", help="requests in flight per heartbeat-only step (wrk -c)"
    )
    parser.add_argument("--skip-heartbeat-only", action="store_true")
    args = parser.parse_args()

    env = _env(args.database_url, args.redis_url, debug=False)
    tmp = Path(tempfile.mkdtemp(prefix="rigshift-load-"))
    credentials = tmp / "credentials.json"
    if not args.reuse:
        _recreate_database(args.database_url)
    _flush_redis(args.redis_url)
    t0 = time.monotonic()
    _prepare(_env(args.database_url, args.redis_url, debug=True), credentials, heartbeat_nodes=args.heartbeat_nodes)
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
        wrk = shutil.which("wrk") is not None
        if wrk:
            floor_web, floor_inside, _ = _floor_phase(base, web.pid, args.floor_seconds)
        else:
            print("wrk not found (apt-get install wrk): no floor and no heartbeat-only scenario", flush=True)
            floor_web = floor_inside = 0.0
        views_before = _view_cpu(base)
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
        mix_web = cpu["web"] / max(float(agg["Request Count"]), 1.0)
        summary = f"p99_ms={p99:.0f} rps={float(agg['Requests/s']):.1f} errors={int(agg['Failure Count'])}"
        if floor_web > 0:
            views_after = _view_cpu(base)
            outside = max(0.0, floor_web - floor_inside)  # per request, outside the middleware (gunicorn, WSGI)
            print(
                f"web CPU per request as a multiple of the floor ({floor_web * 1000:.3f} ms; same run, same server; "
                f"endpoint = its CPU inside the middleware + the floor's {outside * 1000:.3f} ms outside it):"
            )
            for name, view in ENDPOINT_VIEWS.items():
                each = _delta(views_after, views_before, view) + outside
                print(f"  {name:16s} cpu_ms={each * 1000:7.3f} x_floor={each / floor_web:6.2f}")
            print(f"  {'mix (all)':16s} cpu_ms={mix_web * 1000:7.3f} x_floor={mix_web / floor_web:6.2f}")
            summary += f" mix_x_floor={mix_web / floor_web:.2f}"
        if wrk and not args.skip_heartbeat_only:
            tokens = tmp / "heartbeat_tokens.txt"
            tokens.write_text("\n".join(json.loads(credentials.read_text())["heartbeat_nodes"]) + "\n")
            steps = [int(s) for s in args.heartbeat_steps.split(",") if s.strip()]
            best = _heartbeat_phase(base, web.pid, tokens, args.heartbeat_step_seconds, steps)
            summary += f" heartbeat_max_rps_p99_under_100ms={best:.0f}"
        print(summary)
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
