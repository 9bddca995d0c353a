"""Concurrent settlement in several processes on PostgreSQL; a settler killed midway, then retried."""

import multiprocessing
import os
import signal
import time

import pytest
from django.db import connection, connections

from billing.models import LeaseAccount, LedgerTransaction, Settlement, UsageRecord, UsageStatus
from billing.selectors.ledger import ledger_verify
from billing.services.metering import usage_ingest
from billing.services.settlement import lease_settle, rate_gpu_ms, usage_settle_pending
from tests.billing.helpers import open_lease

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks and several processes"),
]
LEASES = list(range(1, 9))
PRICE = 2_345_678


def _settler(worker: int, rounds: int) -> None:
    connections.close_all()
    for i in range(rounds):
        if (worker + i) % 2:
            usage_settle_pending(batch_size=3)
        else:
            for ref in LEASES:
                lease_settle(lease_ref=ref)
    connections.close_all()


def _ingester(node_id: int, seqs: range) -> None:
    connections.close_all()
    for seq in seqs:
        reports = [{"lease_id": ref, "seq": seq, "gpu_seconds": 10 + ref} for ref in LEASES]
        usage_ingest(node_id=node_id, reports=reports + reports[:2])  # duplicates too
        time.sleep(0.002)
    connections.close_all()


def test_several_processes_settling_lose_and_duplicate_nothing() -> None:
    for ref in LEASES:
        open_lease(lease_ref=ref, price_micros=PRICE, hold=10**10, node_id=1)
    for seq in range(20):
        usage_ingest(node_id=1, reports=[{"lease_id": ref, "seq": seq, "gpu_seconds": 10 + ref} for ref in LEASES])
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_settler, args=(w, 15)) for w in range(4)]
    procs.append(ctx.Process(target=_ingester, args=(1, range(20, 60))))
    procs.append(ctx.Process(target=_ingester, args=(1, range(40, 80))))  # overlapping: retries from another worker
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    usage_settle_pending()
    assert not UsageRecord.objects.filter(status=UsageStatus.PENDING).exists()
    for acct in LeaseAccount.objects.all():
        expected_ms = 80 * (10 + acct.lease_ref) * 1000
        assert acct.rated_gpu_ms == expected_ms
        assert acct.charged_micros == rate_gpu_ms(price_micros=PRICE, gpu_ms=expected_ms)
    report = ledger_verify()
    assert report.ok, report.violations
    assert (
        Settlement.objects.filter(ledger_transaction__isnull=False).count()
        == LedgerTransaction.objects.filter(kind="usage_settlement").count()
    )


def _slow_settler() -> None:
    """Settles, but stalls after the ledger write and before commit — then gets SIGKILLed."""
    connections.close_all()
    from billing.models import Settlement as S

    original = S.objects.bulk_create

    def stall(*args, **kwargs):
        result = original(*args, **kwargs)
        time.sleep(60)
        return result

    S.objects.bulk_create = stall  # type: ignore[method-assign]
    usage_settle_pending()


def test_settler_killed_mid_settlement_then_retried_settles_once() -> None:
    open_lease(lease_ref=1, price_micros=PRICE, hold=10**10)
    usage_ingest(node_id=1, reports=[{"lease_id": 1, "seq": s, "gpu_seconds": 30} for s in range(10)])
    connections.close_all()
    proc = multiprocessing.get_context("fork").Process(target=_slow_settler)
    proc.start()
    deadline = time.time() + 60
    stalled = False
    while time.time() < deadline and not stalled:
        # the settler has written ledger, settlement and is sleeping inside its open transaction
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
            )
            stalled = cursor.fetchone()[0] > 0
        time.sleep(0.05)
    assert stalled, "the settler never reached the middle of its transaction"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert LedgerTransaction.objects.filter(kind="usage_settlement").count() == 0  # nothing committed
    # the retry (the task redelivered: acks_late) waits for the dead backend's rollback, then settles once
    usage_settle_pending()
    usage_settle_pending()
    acct = LeaseAccount.objects.get(lease_ref=1)
    assert acct.rated_gpu_ms == 300_000
    assert acct.charged_micros == rate_gpu_ms(price_micros=PRICE, gpu_ms=300_000)
    assert LedgerTransaction.objects.filter(kind="usage_settlement").count() == 1
    assert ledger_verify().ok
