"""Concurrent bookings from several processes on PostgreSQL: no overdraft, Idempotency-Key books once."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from billing.selectors.wallet import wallet_balance
from broker.models import Job
from tests.broker.booking_helpers import fund, node
from tests.factories import CustomerFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (several processes)"),
]

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _run_workers(customer_id: int, keys: list[str]) -> list[dict[str, Any]]:
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    start_at = time.time() + 3.0  # let every process finish starting Django first
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.broker.booking_worker", str(customer_id), str(start_at), key],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key in keys
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_bookings_cannot_overdraw_the_wallet() -> None:
    node(name="big", gpu_count=8, price_micros=500_000)
    customer: Any = CustomerFactory()
    fund(customer, 35)  # each booking holds $10: at most 3 of 8 fit
    results = _run_workers(customer.pk, ["-"] * 8)
    statuses = sorted(r["status"] for r in results)
    assert statuses == [201, 201, 201, 402, 402, 402, 402, 402], results
    balance = wallet_balance(user=customer.user)
    assert balance.available_micros == 5_000_000
    assert balance.held_micros == 30_000_000
    assert Job.objects.filter(customer=customer).count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_idempotency_key_book_once() -> None:
    node(name="big", gpu_count=8, price_micros=500_000)
    customer: Any = CustomerFactory()
    fund(customer, 100)
    results = _run_workers(customer.pk, ["same-key"] * 6)
    jobs = {r["job"] for r in results}
    assert len(jobs) == 1, results
    assert sorted(r["status"] for r in results) == [200, 200, 200, 200, 200, 201]
    assert Job.objects.filter(customer=customer).count() == 1
    assert wallet_balance(user=customer.user).held_micros == 10_000_000
