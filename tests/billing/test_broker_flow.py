"""End to end through the broker's own services: book (hold), lease, agent heartbeats, settlement,
node failure with failover to a second lease, completion — the customer pays exactly what was metered."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from billing.models import LeaseAccount, SlaCredit
from billing.selectors.ledger import ledger_verify
from billing.selectors.wallet import wallet_balance
from billing.services.settlement import usage_settle_pending
from billing.services.wallet import escrow_hold, wallet_credit
from broker.services.agent import agent_heartbeat
from broker.services.jobs import job_cancel
from broker.services.leases import lease_create, lease_end, lease_fail
from tests.factories import CustomerFactory, JobFactory, NodeFactory

pytestmark = pytest.mark.django_db


def run(node, lease, *, first_seq: int, at, beats: int) -> None:
    """An honest agent: `beats` heartbeats 15 s apart from `at`, each reporting the last 15 s of the lease's GPUs
    (and the same report twice). The broker clock starts at the first (activation) and runs to the last, so the
    lease is billed (beats - 1) × 15 s × its GPUs: the time the broker observed it running."""
    for i in range(1, beats + 1):
        end = at + timedelta(seconds=15 * i)
        report = {
            "lease_id": lease.pk,
            "seq": i,
            "gpu_seconds": float(15 * lease.gpu_count),
            "utilisation": 0.9,
            "interval_start": end - timedelta(seconds=15),
            "interval_end": end,
            "state": "running",
        }
        agent_heartbeat(node=node, seq=first_seq + i, leases=[report, report], now=end)


def test_book_run_fail_over_complete_pays_exactly_the_metered_usage() -> None:
    customer: Any = CustomerFactory()
    wallet_credit(user=customer.user, amount_micros=100_000_000, key="fund")
    hold = 2 * 3_600_000 * 2  # 2 GPUs × 2 h at $3.60
    job = JobFactory(
        customer=customer,
        name="train",
        gpu_count=2,
        image="img",
        duration_seconds=7200,
        max_price_micros=3_600_000,
        held_micros=hold,
    )
    escrow_hold(user=customer.user, amount_micros=hold, key=f"job:{job.pk}:hold")
    escrow_hold(user=customer.user, amount_micros=5_000_000, key="another-job-hold")  # must stay untouched
    node_a, node_b = NodeFactory(price_micros=3_600_000), NodeFactory(price_micros=1_800_000)
    now = timezone.now() - timedelta(hours=1)  # the agents' heartbeats below happened in the last hour
    first = lease_create(
        job_id=job.pk,
        node_id=node_a.pk,
        gpu_slots=[0, 1],
        price_micros=3_600_000,
        starts_at=now,
        ends_at=now + timedelta(hours=2),
    )
    run(node_a, first, first_seq=0, at=now, beats=5)  # observed 60 s × 2 GPUs = 120 GPU-s (claimed 150)
    usage_settle_pending()
    assert LeaseAccount.objects.get(lease_ref=first.pk).charged_micros == 120_000  # 120 GPU-s at $3.60/GPU-h
    lease_fail(lease_id=first.pk, reason="node offline")
    job.refresh_from_db()
    second = lease_create(
        job_id=job.pk,
        node_id=node_b.pk,
        gpu_slots=[0, 1],
        price_micros=1_800_000,
        starts_at=now,
        ends_at=now + timedelta(hours=2),
    )
    run(node_b, second, first_seq=0, at=now + timedelta(seconds=100), beats=11)  # 300 GPU-s at $1.80
    lease_end(lease_id=second.pk, reason="completed", complete_job=True)
    usage_settle_pending()
    charged = sum(LeaseAccount.objects.values_list("charged_micros", flat=True))
    assert charged == 120_000 + 150_000
    credit = sum(SlaCredit.objects.values_list("credit_micros", flat=True))
    balance = wallet_balance(user=customer.user)
    assert balance.held_micros == 5_000_000, "the job's unused hold is returned, the other job's hold stays"
    assert balance.available_micros == 100_000_000 - 5_000_000 - charged + credit
    report = ledger_verify()
    assert report.ok, report.violations


def test_cancel_after_failover_returns_the_whole_unused_hold_once() -> None:
    customer: Any = CustomerFactory()
    wallet_credit(user=customer.user, amount_micros=100_000_000, key="fund")
    hold = 2 * 3_600_000 * 2
    job = JobFactory(
        customer=customer,
        name="train",
        gpu_count=2,
        image="img",
        duration_seconds=7200,
        max_price_micros=3_600_000,
        held_micros=hold,
    )
    escrow_hold(user=customer.user, amount_micros=hold, key=f"job:{job.pk}:hold")
    node_a, node_b = NodeFactory(price_micros=3_600_000), NodeFactory(price_micros=1_800_000)
    now = timezone.now() - timedelta(hours=1)  # the agents' heartbeats below happened in the last hour
    first = lease_create(
        job_id=job.pk,
        node_id=node_a.pk,
        gpu_slots=[0, 1],
        price_micros=3_600_000,
        starts_at=now,
        ends_at=now + timedelta(hours=2),
    )
    run(node_a, first, first_seq=0, at=now, beats=5)  # 120 GPU-s observed at $3.60 = $0.12
    usage_settle_pending()
    lease_fail(lease_id=first.pk, reason="node offline")
    second = lease_create(
        job_id=job.pk,
        node_id=node_b.pk,
        gpu_slots=[0, 1],
        price_micros=1_800_000,
        starts_at=now,
        ends_at=now + timedelta(hours=2),
    )
    run(node_b, second, first_seq=0, at=now + timedelta(seconds=100), beats=11)  # 300 GPU-s at $1.80 = $0.15
    job.refresh_from_db()
    job_cancel(job=job, customer=customer)
    charged = sum(LeaseAccount.objects.filter(job_ref=job.pk).values_list("charged_micros", flat=True))
    assert charged == 120_000 + 150_000
    credit = sum(SlaCredit.objects.values_list("credit_micros", flat=True))
    balance = wallet_balance(user=customer.user)
    assert balance.held_micros == 0, "nothing of the cancelled job stays in escrow"
    assert balance.available_micros == 100_000_000 - charged + credit
    report = ledger_verify()
    assert report.ok, report.violations
