"""Issue 12, points 1–2, through the real agent API on a running server: the broker bills only what it observed.

A dishonest provider's agent over-reports (intervals reaching back hours, intervals in the future, inflated
GPU-seconds, the lease of another provider's job, the same interval reported many times); an honest provider's
agent reports what ran. The customer of the dishonest provider is charged no more than the broker-observed time and
never more than each job's own escrow hold; the other job's escrow is untouched; the honest usage settles in the same
batch as the capped one; what was refused or capped stays in escrow and goes back to the wallet; ledger_check passes.
"""

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command

from billing.models import LeaseAccount, Settlement, UsageAnomaly, UsageAnomalyKind
from billing.selectors.wallet import wallet_balance
from billing.services.settlement import rate_gpu_ms, usage_settle_pending
from billing.services.wallet import escrow_hold, wallet_credit
from broker.models import Job, JobState, Lease
from broker.services.leases import lease_create, lease_end
from common.tokens import token_generate, token_hash
from tests.factories import CustomerFactory, NodeFactory
from tests.live_clock import ServerClock

rigshift_client = pytest.importorskip("rigshift_client")
from rigshift_client import ApiClient, ApiError  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PRICE = 3_600_000  # $3.60 per GPU-hour: one GPU-second costs 1,000 micro-USD
HEARTBEAT = "/api/v1/agent/heartbeat"


class Agent:
    """A node agent speaking the real HTTP API, with its own heartbeat and per-lease report numbering."""

    def __init__(self, live_server: Any, clock: ServerClock, **node_fields: Any) -> None:
        raw = token_generate(prefix="rsn")
        self.node = NodeFactory(
            gpu_count=2, price_micros=PRICE, token_hash=token_hash(raw=raw), token_prefix=raw[:12], **node_fields
        )
        self.client = ApiClient(server=live_server.url, token=raw)
        self.clock, self.seq, self.report_seq = clock, 0, 0

    def report(self, lease: Lease, *, start_s: float, end_s: float, gpu_seconds: float, state: str = "running") -> dict:
        self.report_seq += 1
        at = self.clock.datetime()
        iso = lambda s: (at + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")  # noqa: E731
        return {
            "lease_id": lease.pk,
            "seq": self.report_seq,
            "gpu_seconds": gpu_seconds,
            "utilisation": 0.9,
            "interval_start": iso(start_s),
            "interval_end": iso(end_s),
            "state": state,
        }

    def beat(self, *reports: dict) -> dict:
        self.seq += 1
        return self.client.post(HEARTBEAT, json={"seq": self.seq, "status": "ok", "leases": list(reports)})


def job_with_lease(*, customer: Any, node: Any, slot: int, hold: int, starts_at: Any) -> Lease:
    job = Job.objects.create(
        customer=customer,
        name=f"job-on-slot-{slot}",
        gpu_count=1,
        image="img",
        duration_seconds=3600,
        max_price_micros=PRICE,
        held_micros=hold,
    )
    escrow_hold(user=customer.user, amount_micros=hold, key=f"job:{job.pk}:hold")
    return lease_create(
        job_id=job.pk,
        node_id=node.pk,
        gpu_slots=[slot],
        price_micros=PRICE,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
    )


def refused(agent: Agent, *reports: dict) -> ApiError:
    with pytest.raises(ApiError) as caught:
        agent.beat(*reports)
    assert caught.value.status == 400
    return caught.value


def test_over_reporting_agent_is_billed_only_what_the_broker_observed(live_server: Any, monkeypatch: Any) -> None:
    clock = ServerClock(monkeypatch)
    cheat, honest = Agent(live_server, clock), Agent(live_server, clock)
    customer, other_customer = CustomerFactory(), CustomerFactory()
    wallet_credit(user=customer.user, amount_micros=20_000_000, key="fund-a")
    wallet_credit(user=other_customer.user, amount_micros=20_000_000, key="fund-b")
    start = clock.datetime()
    small = job_with_lease(customer=customer, node=cheat.node, slot=0, hold=60_000, starts_at=start)  # 60 GPU-s
    big = job_with_lease(customer=customer, node=cheat.node, slot=1, hold=3_600_000, starts_at=start)  # 1 GPU-h
    fair = job_with_lease(customer=other_customer, node=honest.node, slot=0, hold=3_600_000, starts_at=start)

    # t = 15 s: the first reports activate the three leases (the broker clock starts now, at activation)
    clock.now += 15
    body = cheat.beat(
        cheat.report(small, start_s=-15, end_s=0, gpu_seconds=15),
        cheat.report(big, start_s=-15, end_s=0, gpu_seconds=15),
    )
    assert sorted(body["activated_leases"]) == sorted([small.pk, big.pk])
    honest.beat(honest.report(fair, start_s=-15, end_s=0, gpu_seconds=15))

    # The attacks the issue lists, each refused with a 400 naming the reason; nothing of such a heartbeat is kept.
    clock.now += 15
    five_hours = refused(cheat, cheat.report(small, start_s=-5 * 3600, end_s=0, gpu_seconds=18_000))
    assert five_hours.body["code"] == "usage_outside_lease" and "interval" in five_hours.message
    year = 365 * 86_400
    future = refused(cheat, cheat.report(big, start_s=year, end_s=year + 15, gpu_seconds=15))
    assert "in the future" in future.message
    inflated = refused(cheat, cheat.report(big, start_s=-15, end_s=0, gpu_seconds=18_000))
    assert inflated.body["code"] == "usage_too_high"
    # another provider's lease (another job's, on another node) is not this node's: ignored, never metered
    body = cheat.beat(cheat.report(fair, start_s=-15, end_s=0, gpu_seconds=15))
    assert body["ignored_leases"][0]["lease_id"] == fair.pk
    assert UsageAnomaly.objects.filter(kind=UsageAnomalyKind.REFUSED_REPORT, node_id=cheat.node.pk).count() == 3

    # 120 s more: the cheat reports each 15 s interval five times over (under new report numbers) for both leases,
    # the honest agent once. Each report on its own is plausible; together they claim 5× the time.
    for _ in range(8):
        clock.now += 15
        cheat.beat(
            *[cheat.report(lease, start_s=-15, end_s=0, gpu_seconds=15) for lease in (small, big) for _ in range(5)]
        )
        honest.beat(honest.report(fair, start_s=-15, end_s=0, gpu_seconds=15))

    # One settlement batch: the honest lease and both of the cheat's leases, the small one capped at its job's hold.
    before = Settlement.objects.count()
    usage_settle_pending()
    accounts = {a.lease_ref: a for a in LeaseAccount.objects.all()}
    assert Settlement.objects.count() == before + 3, "honest usage settles in the same batch as the capped one"
    observed_ms = (15 + 8 * 15) * 1000  # activation at t=15 s, last heartbeat at t=150 s: 135 s on 1 GPU
    for lease in (small, big, fair):
        account = accounts[lease.pk]
        assert account.rated_gpu_ms <= observed_ms, "never billed beyond the broker-observed time"
        assert account.charged_micros <= rate_gpu_ms(price_micros=PRICE, gpu_ms=observed_ms)
    assert accounts[big.pk].claimed_gpu_ms > 4 * observed_ms  # what the cheat claimed…
    assert accounts[big.pk].charged_micros == rate_gpu_ms(price_micros=PRICE, gpu_ms=observed_ms)  # …what it got
    assert accounts[fair.pk].charged_micros == rate_gpu_ms(price_micros=PRICE, gpu_ms=observed_ms)
    assert accounts[small.pk].charged_micros == 60_000, "capped at its own job's hold, not taken from the other job"
    capped = UsageAnomaly.objects.get(kind=UsageAnomalyKind.OVER_HOLD, lease_ref=small.pk)
    assert capped.provider_id == cheat.node.provider.user_id
    assert (capped.claimed_micros, capped.charged_micros) == (135_000, 60_000)

    # The jobs end: each job's unused hold goes back; the capped and refused money never left the customer.
    clock.now += 5
    for lease in (small, big, fair):
        assert lease_end(lease_id=lease.pk, reason="expired", complete_job=True)
    assert set(Job.objects.values_list("state", flat=True)) == {JobState.COMPLETED}
    charged = {ref: LeaseAccount.objects.get(lease_ref=ref).charged_micros for ref in (small.pk, big.pk, fair.pk)}
    assert charged[small.pk] == 60_000 and charged[big.pk] == charged[fair.pk] == 135_000
    mine = wallet_balance(user=customer.user)
    assert (mine.available_micros, mine.held_micros) == (20_000_000 - 60_000 - 135_000, 0)
    theirs = wallet_balance(user=other_customer.user)
    assert (theirs.available_micros, theirs.held_micros) == (20_000_000 - 135_000, 0)
    # the flags count against the cheat (underwriting, console), never against the honest provider
    assert UsageAnomaly.objects.filter(provider=honest.node.provider.user).count() == 0
    assert set(UsageAnomaly.objects.filter(provider=cheat.node.provider.user).values_list("kind", flat=True)) == {
        UsageAnomalyKind.REFUSED_REPORT,
        UsageAnomalyKind.OVER_HOLD,
        UsageAnomalyKind.OVER_CLOCK,
    }
    out = io.StringIO()
    call_command("ledger_check", stdout=out)
    text = out.getvalue()
    assert "ledger OK" in text and "within their job's hold and the broker-observed time" in text
    assert "1 usage anomalies capped" in text and "3 usage reports refused" in text


def test_a_silent_node_stops_the_clock_and_an_exit_report_only_shortens_it(live_server: Any, monkeypatch: Any) -> None:
    clock = ServerClock(monkeypatch)
    agent = Agent(live_server, clock)
    customer = CustomerFactory()
    wallet_credit(user=customer.user, amount_micros=10_000_000, key="fund")
    lease = job_with_lease(customer=customer, node=agent.node, slot=0, hold=3_600_000, starts_at=clock.datetime())
    clock.now += 15
    agent.beat(agent.report(lease, start_s=-15, end_s=0, gpu_seconds=15))  # activation
    clock.now += 15
    agent.beat(agent.report(lease, start_s=-15, end_s=0, gpu_seconds=15))  # observed: 15 s
    clock.now += 600  # the node goes silent for ten minutes, then reports it all as one "exited" interval
    late = refused(agent, agent.report(lease, start_s=-600, end_s=0, gpu_seconds=600, state="exited"))
    assert "interval" in late.message
    # a plausible exit report: the workload exited 30 s after the last heartbeat; the broker stops at what it saw
    agent.beat(agent.report(lease, start_s=-45, end_s=-15, gpu_seconds=30, state="exited"))
    account = LeaseAccount.objects.get(lease_ref=lease.pk)
    assert account.status == "closed"
    assert account.rated_gpu_ms == 15_000 and account.charged_micros == 15_000
    balance = wallet_balance(user=customer.user)
    assert (balance.available_micros, balance.held_micros) == (10_000_000 - 15_000, 0)
