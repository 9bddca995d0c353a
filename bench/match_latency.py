"""Booking-to-matched latency: `python -m bench.match_latency [--jobs 200] [--rate 5]`.

Books `--jobs` one-GPU jobs through the booking service (`job_book`, what the API and the portal call) at a
steady `--rate` per second on a market with free capacity, with a real Celery worker process consuming the
match rounds each booking asks for (`match_round_soon`: debounced, after commit). For each job it measures
the time from the booking's return (the response) to the job being `matched`, observed by polling the
database every 10 ms. Runs on the configured stack: REDIS_URL set = Redis broker, cache and lock; unset =
the embedded default (filesystem broker, file cache, file lock), with DATABASE_URL or SQLite. Without
DATABASE_URL it uses a fresh SQLite database in a temporary RIGSHIFT_VAR_DIR (migrated first).

Last line: `p50_ms=… p99_ms=…`. Targets: p99 < 1,000 ms on Redis, < 2,000 ms embedded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("DATABASE_URL") and not env.get("RIGSHIFT_VAR_DIR"):
        env["RIGSHIFT_VAR_DIR"] = tempfile.mkdtemp(prefix="rigshift-latency-")
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env["CELERY_TASK_ALWAYS_EAGER"] = "0"
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=5.0, help="bookings per second")
    parser.add_argument("--nodes", type=int, default=40, help="8-GPU nodes (free capacity for every job)")
    args = parser.parse_args(argv)
    env = _env()
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    from billing.services.wallet import wallet_credit
    from broker.models import Job, JobState
    from broker.services.jobs import job_book
    from marketplace.models import Customer, GPUModel, Node
    from tests.factories import CustomerFactory, GPUModelFactory, NodeFactory

    run = int(time.time())
    model = cast(GPUModel, GPUModelFactory(slug=f"lat-{run}", name=f"Latency GPU {run}"))
    for _ in range(args.nodes):
        cast(Node, NodeFactory(gpu_model=model, gpu_count=8, price_micros=500_000))
    customer = cast(Customer, CustomerFactory())
    wallet_credit(user=customer.user, amount_micros=10_000 * 1_000_000, key=f"latency:{run}")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "WARNING", "--pool", "solo"],
        cwd=ROOT,
        env=env,
    )
    try:
        time.sleep(4.0)  # the worker connects
        backend = "redis" if env.get("REDIS_URL") else "embedded"
        print(
            f"stack: {backend}, database {django.db.connection.vendor}; {args.jobs} jobs at {args.rate:g}/s", flush=True
        )
        booked: dict[int, float] = {}
        matched: dict[int, float] = {}
        interval = 1.0 / args.rate
        start = time.perf_counter()
        payload = {
            "gpu_count": 1,
            "image": "img",
            "max_price": "1.00",
            "duration_hours": "1",
            "gpu_models": [model.slug],
        }
        i = 0
        deadline = None
        while len(matched) < args.jobs:
            now = time.perf_counter()
            if i < args.jobs and now >= start + i * interval:
                job = job_book(customer=customer, data=payload)
                booked[job.pk] = time.perf_counter()
                i += 1
                if i == args.jobs:
                    deadline = time.perf_counter() + 60.0
            waiting = [pk for pk in booked if pk not in matched]
            if waiting:
                seen = time.perf_counter()
                for pk in (
                    Job.objects.filter(pk__in=waiting).exclude(state=JobState.PENDING).values_list("pk", flat=True)
                ):
                    matched[pk] = seen
            if deadline is not None and time.perf_counter() > deadline:
                break
            time.sleep(0.01)
        lat = sorted((matched[pk] - booked[pk]) * 1000 for pk in matched)
        missing = len(booked) - len(matched)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

        print(
            f"matched {len(matched)}/{len(booked)} (not matched within 60 s: {missing}); "
            f"max {lat[-1] if lat else 0:.0f} ms"
        )
        Job.objects.filter(customer=customer).update(state=JobState.CANCELLED)
        print(f"p50_ms={pct(0.50):.0f} p99_ms={pct(0.99):.0f}")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
