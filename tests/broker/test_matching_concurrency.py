# mypy: disable-error-code="misc"
"""Several processes run match rounds (with and without the shard lock) and book jobs at the same time on
PostgreSQL: no GPU is leased twice for overlapping time, no job holds two live leases, every bookable job
is placed."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from broker.models import Job, JobState, Lease, LeaseState
from broker.services.matching import match_round_run
from tests.broker.booking_helpers import fund, node
from tests.factories import CustomerFactory, JobFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (several processes)"),
]

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _run(workers: list[list[str]]) -> list[dict[str, Any]]:
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    start_at = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.broker.matching_worker", args[0], str(start_at), *args[1:]],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in workers
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _overlapping_slot_pairs() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM broker_leaseslot a JOIN broker_leaseslot b ON a.id < b.id "
            "AND a.node_id = b.node_id AND a.slot = b.slot AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_concurrent_rounds_and_bookings_never_double_book() -> None:
    for i in range(4):
        node(name=f"n{i}", gpu_count=[8, 4, 2, 1][i], price_micros=500_000)  # 15 GPUs
    customers = [CustomerFactory() for _ in range(3)]
    for c in customers:
        fund(c, 100)
    # Pending jobs already queued (more than capacity), then bookings arrive while rounds run.
    for c in customers:
        for _ in range(4):
            JobFactory(customer=c, name="q", gpu_count=1, image="i", duration_seconds=3600)
    results = _run(
        [
            ["round", "15"],
            ["round", "15"],
            ["rogue", "15"],
            ["rogue", "15"],
            ["book", "4", str(customers[0].pk)],
            ["book", "4", str(customers[1].pk)],
        ]
    )
    booked = sum(r["booked"] for r in results)
    assert booked == 8
    assert _overlapping_slot_pairs() == 0
    live = Lease.objects.filter(state__in=[LeaseState.RESERVED, LeaseState.ACTIVE])
    per_job = list(live.values_list("job_id", flat=True))
    assert len(per_job) == len(set(per_job)), "a job holds two live leases"
    assert live.count() == 15  # 20 jobs for 15 GPUs: every GPU leased exactly once
    for lease in live:
        assert Job.objects.get(pk=lease.job_id).state == JobState.MATCHED
    # Every job that could be placed is: free GPUs → a final round places the rest.
    match_round_run()
    assert Job.objects.filter(state=JobState.PENDING).count() == 20 - 15


@pytest.mark.django_db(transaction=True)
def test_every_bookable_job_placed_when_capacity_suffices() -> None:
    node(name="big", gpu_count=8, price_micros=500_000)
    node(name="mid", gpu_count=4, price_micros=500_000)
    customers = [CustomerFactory() for _ in range(3)]
    for c in customers:
        fund(c, 100)
    results = _run([["book", "3", str(c.pk)] for c in customers] + [["round", "10"], ["rogue", "10"]])
    assert sum(r["booked"] for r in results) == 9
    match_round_run()  # a beat round after the burst
    assert Job.objects.filter(state=JobState.MATCHED).count() == 9
    assert _overlapping_slot_pairs() == 0
