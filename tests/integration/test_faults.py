# mypy: disable-error-code="misc"
"""Faults against real processes on PostgreSQL: Celery workers SIGKILLed in the middle of a matching round and of a
settlement batch and restarted, the Redis server killed and restarted, every database connection terminated.

Each test starts its own redis-server (a private one on a free port, so killing it disturbs nobody), Celery worker
processes and, where needed, gunicorn, all on the pytest test database. What the beat would send, the test sends
(`match_round`, `settle_usage` by name); nothing is repaired by hand. After each fault: every job matched at most
once and every bookable job placed; every usage event counted once, the ledger balanced, no money lost; the health
check and the task flow come back on their own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from billing.models import (
    Account,
    AccountKind,
    LeaseAccount,
    LedgerTransaction,
    Settlement,
    UsageRecord,
    UsageStatus,
)
from billing.selectors.ledger import ledger_verify
from billing.services.metering import lease_clock_advance, usage_ingest
from billing.services.settlement import rate_gpu_ms
from broker.models import Job, JobState, Lease, LeaseState, MatchRound
from broker.services.jobs import job_book
from broker.services.leases import lease_activate
from broker.services.matching import match_round_run
from common.services import api_token_create
from marketplace.models import Customer
from tests.broker.booking_helpers import fund, node
from tests.factories import CustomerFactory
from tests.integration.processes import (
    Proc,
    RedisServer,
    celery_worker,
    child_env,
    http,
    redis_server_available,
    send_task,
    wait_for,
    web_server,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (several processes)"),
    pytest.mark.skipif(not redis_server_available(), reason="needs redis-server (a private one is started)"),
    pytest.mark.django_db(transaction=True),
]

MATCH_LOCK = "rigshift:match-lock:default"
HOLDING = (LeaseState.RESERVED, LeaseState.ACTIVE)


# ------------------------------------------------------------------------------------------------ fixtures


class Stack:
    """The processes of one test; whatever is still running is stopped at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.redis = RedisServer(tmp)
        self.procs: list[Proc] = []

    def env(self) -> dict[str, str]:
        return child_env(redis_url=self.redis.url, var_dir=self.tmp / "var")

    def worker(self, name: str) -> Proc:
        proc = celery_worker(name, env=self.env(), tmp=self.tmp)
        self.procs.append(proc)
        return proc

    def web(self, threads: int = 2) -> str:
        proc, base = web_server(env=self.env(), tmp=self.tmp, threads=threads)
        self.procs.append(proc)
        return base

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-2500:]}" for p in self.procs)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # Bookings made inside the test process must not run a round inline (the test settings run tasks eagerly):
    # the rounds under test run in the worker processes.
    monkeypatch.setattr("broker.dispatch.match_round_request", lambda shard="default": None)
    s = Stack(tmp_path)
    s.redis.start()
    try:
        yield s
    finally:
        print(s.logs())  # pytest shows it when the test failed
        for proc in reversed(s.procs):
            proc.stop()
        if s.redis.proc is not None:
            s.redis.proc.stop()


# ------------------------------------------------------------------------------------------------ helpers


def _writing_backends(table: str | None) -> int:
    """Other sessions of the test database inside a transaction that has written or locked rows (of `table`)."""
    with connection.cursor() as cursor:
        if table is None:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = %s AND l.mode = 'RowExclusiveLock' AND l.pid <> pg_backend_pid()",
                [table],
            )
        return int(cursor.fetchone()[0])


def _kill_when_writing(proc: Proc, *, timeout: float, table: str | None = None) -> bool:
    """SIGKILL `proc` as soon as another session holds an open write transaction (one that writes `table`);
    False if none was seen."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if _writing_backends(table):
            proc.kill()
            return True
        time.sleep(0.002)
    proc.kill()
    return False


def _book(customers: list[Customer], sizes: list[int]) -> list[int]:
    ids = []
    for i, gpus in enumerate(sizes):
        job = job_book(
            customer=customers[i % len(customers)],
            data={"image": "ghcr.io/x/y:1", "gpu_count": gpus, "duration_hours": "1", "max_price": "1.00"},
        )
        ids.append(job.pk)
    return ids


def _overlapping_slot_pairs() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM broker_leaseslot a JOIN broker_leaseslot b ON a.id < b.id "
            "AND a.node_id = b.node_id AND a.slot = b.slot AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at "
            "JOIN broker_lease la ON la.id = a.lease_id JOIN broker_lease lb ON lb.id = b.lease_id "
            "WHERE la.state IN ('reserved', 'active') AND lb.state IN ('reserved', 'active')"
        )
        return int(cursor.fetchone()[0])


def _assert_matched_at_most_once() -> None:
    per_job: dict[int, int] = defaultdict(int)
    for job_id in Lease.objects.filter(state__in=HOLDING).values_list("job_id", flat=True):
        per_job[job_id] += 1
    assert {j: n for j, n in per_job.items() if n > 1} == {}, "a job holds two leases"
    assert _overlapping_slot_pairs() == 0, "a GPU is leased twice at overlapping times"
    # every holding lease belongs to a matched/running job, every matched job has its lease
    matched = set(Job.objects.filter(state__in=[JobState.MATCHED, JobState.RUNNING]).values_list("pk", flat=True))
    assert matched == set(per_job)


def _balances() -> dict[str, int]:
    rows = Account.objects.values("kind").annotate(total=Sum("balance"))
    return {row["kind"]: int(row["total"] or 0) for row in rows}


# ------------------------------------------------------------------------------------------------ (a) matching


def test_worker_killed_mid_matching_round_restarts_and_places_every_job_once(stack: Stack) -> None:
    for i in range(40):
        node(name=f"fault-{i}", gpu_count=8, price_micros=500_000, last_heartbeat_at=timezone.now())  # 320 GPUs
    customers = [CustomerFactory() for _ in range(6)]
    for c in customers:
        fund(c, 2_000)
    jobs = _book(customers, [1] * 120 + [2] * 30)  # 180 GPUs: every job is bookable now
    r = stack.redis.client()

    # 1. Killed as soon as it takes the matcher lock (snapshot/engine phase): nothing written, the lock is left.
    w1 = stack.worker("w1")
    send_task(stack.redis.url, "broker.tasks.match_round", "default")
    wait_for(lambda: r.exists(MATCH_LOCK), timeout=30, what="the round to take the matcher lock", interval=0.002)
    w1.kill()
    killed_before_commit = MatchRound.objects.count() == 0
    assert Lease.objects.count() == 0 or not killed_before_commit
    # The dead matcher's lock lapses by itself (RIGSHIFT_MATCH_LOCK_TTL_S, 5 s here; 120 s by default).
    wait_for(lambda: not r.exists(MATCH_LOCK), timeout=15, what="the dead matcher's lock to lapse", interval=0.1)

    # 2. Killed inside the round's commit transaction (leases, slots and job states half written), up to three
    #    tries (a fast round may commit before the kill lands; then more jobs are booked and it is tried again).
    hit = False
    for attempt in range(3):
        rounds, leases = MatchRound.objects.count(), Lease.objects.count()
        w2 = stack.worker(f"w2-{attempt}")
        send_task(stack.redis.url, "broker.tasks.match_round", "default")
        seen = _kill_when_writing(w2, timeout=30, table="broker_lease")  # leases written, not yet committed
        time.sleep(0.3)  # the server notices the dead client and rolls its transaction back
        if seen and MatchRound.objects.count() == rounds:
            assert Lease.objects.count() == leases, "a killed round left leases behind"
            hit = True
            break
        jobs += _book(customers, [1] * 40)
    assert hit, "no kill landed inside a round's commit"
    _assert_matched_at_most_once()

    # 3. A fresh worker, and the beat's rounds (every second here): every job is placed, once, with no manual step.
    stack.worker("w3")

    def all_placed() -> bool:
        send_task(stack.redis.url, "broker.tasks.match_round", "default")
        return not Job.objects.filter(pk__in=jobs).exclude(state=JobState.MATCHED).exists()

    try:
        wait_for(all_placed, timeout=60, what="every job to be matched", interval=1.0)
    except AssertionError:
        pending = list(Job.objects.filter(pk__in=jobs, state=JobState.PENDING).values_list("pending_reason", flat=True))
        raise AssertionError(f"{len(pending)} jobs still pending: {pending[:3]}\n{stack.logs()}") from None
    _assert_matched_at_most_once()
    assert Lease.objects.filter(state__in=HOLDING).count() == len(jobs)
    assert ledger_verify().ok


# ------------------------------------------------------------------------------------------------ (b) settlement


def test_worker_killed_mid_settlement_counts_every_usage_event_once_and_loses_no_money(stack: Stack) -> None:
    for i in range(30):
        node(name=f"settle-{i}", gpu_count=8, price_micros=500_000, last_heartbeat_at=timezone.now())
    customers = [CustomerFactory() for _ in range(5)]
    for c in customers:
        fund(c, 2_000)
    _book(customers, [1] * 160 + [2] * 20)
    assert match_round_run().placed == 180  # in-process: this test is about settlement
    leases = list(Lease.objects.filter(state=LeaseState.RESERVED).order_by("pk"))
    start = timezone.now()
    for lease in leases:
        assert lease_activate(lease_id=lease.pk, now=start)  # opens billing's lease account; the broker clock starts
    for beat in range(1, 5):  # each node heartbeats four times, 15 s apart: the broker observes one minute
        for node_id in {lease.node_id for lease in leases}:
            lease_clock_advance(
                node_id=node_id,
                seen_at=start + timedelta(seconds=15 * beat),
                previous=start + timedelta(seconds=15 * (beat - 1)),
            )
    end = start + timedelta(seconds=60)
    expected_ms: dict[int, int] = defaultdict(int)
    by_node: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for lease in leases:
        for seq in range(1, 5):
            gpu_seconds = 15 * lease.gpu_count - seq * 0.25  # not a round number, so rounding would show
            by_node[lease.node_id].append(
                {
                    "lease_id": lease.pk,
                    "seq": seq,
                    "gpu_seconds": gpu_seconds,
                    "utilisation": 0.9,
                    "interval_start": end - timedelta(seconds=15 * (5 - seq)),
                    "interval_end": end - timedelta(seconds=15 * (4 - seq)),
                    "state": "running",
                }
            )
            expected_ms[lease.pk] += round(gpu_seconds * 1000)
    for node_id, reports in by_node.items():
        usage_ingest(node_id=node_id, reports=reports)
        usage_ingest(node_id=node_id, reports=reports)  # the agent retried: counted once
    events = UsageRecord.objects.count()
    assert events == 4 * len(leases)
    before = _balances()

    # Killed inside a settlement batch (accounts locked, ledger and usage half written): that batch rolls back.
    w1 = stack.worker("w1")
    send_task(stack.redis.url, "billing.tasks.settle_usage")
    assert _kill_when_writing(w1, timeout=30), "the settlement never started"
    time.sleep(0.3)
    assert UsageRecord.objects.filter(status=UsageStatus.PENDING).exists(), "settled before the kill"
    for account in LeaseAccount.objects.all():  # whatever committed is whole: usage rated == usage settled
        rated = UsageRecord.objects.filter(lease_ref=account.lease_ref, status=UsageStatus.RATED).aggregate(
            ms=Sum("gpu_ms")
        )["ms"]
        # the claims are within the observed minute, so what was billed is what the rated reports claim
        assert account.claimed_gpu_ms == account.rated_gpu_ms == (rated or 0)

    # A fresh worker and the beat's settle_usage: everything settles, each event once.
    stack.worker("w2")

    def all_settled() -> bool:
        send_task(stack.redis.url, "billing.tasks.settle_usage")
        return not UsageRecord.objects.filter(status=UsageStatus.PENDING).exists()

    wait_for(all_settled, timeout=60, what="every usage event to be settled", interval=1.0)

    assert UsageRecord.objects.count() == events
    assert set(UsageRecord.objects.values_list("status", flat=True)) == {UsageStatus.RATED}
    assert not UsageRecord.objects.filter(settlement__isnull=True).exists()
    accounts = {a.lease_ref: a for a in LeaseAccount.objects.all()}
    assert set(accounts) == set(expected_ms)
    charged_total = 0
    for ref, account in accounts.items():
        settled_ms = Settlement.objects.filter(lease_account=account).aggregate(ms=Sum("gpu_ms"))["ms"]
        assert account.rated_gpu_ms == settled_ms == expected_ms[ref], f"lease {ref}: usage counted twice or lost"
        assert account.charged_micros == rate_gpu_ms(price_micros=account.price_micros, gpu_ms=expected_ms[ref])
        assert account.charged_micros == account.fee_micros + account.reserve_micros + account.provider_micros
        charged_total += account.charged_micros
    for s in Settlement.objects.all():
        assert s.charged_micros == s.fee_micros + s.reserve_micros + s.provider_micros
    assert LedgerTransaction.objects.filter(kind="usage_settlement").count() == (
        Settlement.objects.filter(charged_micros__gt=0).count()
    )
    report = ledger_verify()
    assert report.ok, report.violations

    # No money lost: what left the customers' escrow is exactly fees + reserve + provider earnings.
    after = _balances()
    fees = sum(a.fee_micros for a in accounts.values())
    reserve = sum(a.reserve_micros for a in accounts.values())
    earnings = sum(a.provider_micros for a in accounts.values())
    assert charged_total > 0
    assert before.get(AccountKind.CUSTOMER_ESCROW, 0) - after[AccountKind.CUSTOMER_ESCROW] == charged_total
    assert after[AccountKind.PLATFORM_REVENUE] - before.get(AccountKind.PLATFORM_REVENUE, 0) == fees
    assert after[AccountKind.RESERVE_FUND] - before.get(AccountKind.RESERVE_FUND, 0) == reserve
    assert after[AccountKind.PROVIDER_PAYABLE] - before.get(AccountKind.PROVIDER_PAYABLE, 0) == earnings
    assert charged_total == fees + reserve + earnings
    assert after.get(AccountKind.CUSTOMER_WALLET) == before.get(AccountKind.CUSTOMER_WALLET)


# ------------------------------------------------------------------------------------------------ (c) Redis


def _customer_with_token(dollars: int = 1_000) -> str:
    customer = CustomerFactory()
    fund(customer, dollars)
    return api_token_create(user=customer.user, name="faults")[1]


BOOKING = {"image": "ghcr.io/x/y:1", "gpu_count": 1, "duration_hours": "1", "max_price": "1.00"}


def _book_http(base: str, token: str) -> int:
    status, body = http(f"{base}/api/v1/jobs/", BOOKING, token=token)
    assert status == 201, (status, body)
    return int(body["id"])


def _matched(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, state=JobState.MATCHED).exists()


def test_redis_restart_health_recovers_and_tasks_resume(stack: Stack) -> None:
    node(name="redis-0", gpu_count=8, price_micros=500_000, last_heartbeat_at=timezone.now())
    token = _customer_with_token()
    stack.worker("w1")
    base = stack.web()
    status, body = http(f"{base}/healthz", timeout=30)
    assert status == 200, body
    first = _book_http(base, token)  # the booking asks for a round through Redis; the worker runs it
    wait_for(lambda: _matched(first), timeout=30, what="the first booking to be matched")

    stack.redis.kill()
    status, body = http(f"{base}/healthz", timeout=30)
    assert status == 503 and body["broker"]["ok"] is False, body

    stack.redis.start()  # same port, empty: queued messages and cache keys are gone
    wait_for(lambda: http(f"{base}/healthz", timeout=30)[0] == 200, timeout=30, what="/healthz to recover")
    second = _book_http(base, token)
    try:
        wait_for(lambda: _matched(second), timeout=60, what="a booking after the restart to be matched")
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    _assert_matched_at_most_once()


# ------------------------------------------------------------------------------------------------ (d) database


def test_dropped_database_connections_recover_without_manual_action(stack: Stack) -> None:
    node(name="pg-0", gpu_count=8, price_micros=500_000, last_heartbeat_at=timezone.now())
    token = _customer_with_token()
    stack.worker("w1")
    base = stack.web(threads=1)  # one thread: the next request surely meets the connection that was dropped
    first = _book_http(base, token)  # the web server now holds a persistent connection (CONN_MAX_AGE)
    wait_for(lambda: _matched(first), timeout=30, what="the first booking to be matched")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        terminated = int(cursor.fetchone()[0])
    # The web's persistent connection (CONN_MAX_AGE) at least. The worker holds none between tasks: Celery's Django
    # fixup closes the connection after every task, so each task starts on a fresh one.
    assert terminated >= 1, "expected the web server's persistent connection"

    # The very next requests succeed: each stale connection fails its health check and is replaced.
    status, body = http(f"{base}/healthz")
    assert status == 200, body
    # pg_terminate_backend only signals the backends: one may die just after the health check passed, in the middle
    # of the next request. That request answers 503 + Retry-After (never 500) and nothing was saved; a client retries.
    status, body = http(f"{base}/api/v1/jobs/", BOOKING, token=token)
    if status == 503:
        assert body["code"] == "database_unavailable", body
        time.sleep(2)
        status, body = http(f"{base}/api/v1/jobs/", BOOKING, token=token)
    assert status == 201, (status, body)
    second = int(body["id"])
    status, listing = http(f"{base}/api/v1/jobs/", token=token)
    assert status == 200 and {j["id"] for j in listing["results"]} >= {first, second}
    try:
        wait_for(lambda: _matched(second), timeout=45, what="the worker to match after its connection was dropped")
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    _assert_matched_at_most_once()
