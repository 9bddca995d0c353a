"""Property-based: random sequences of bookings, heartbeats (duplicated, reordered, late), settlements,
cancellations, node failures, top-ups and payouts keep the books exact after every step."""

import itertools
import random
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from billing.errors import InsufficientFunds
from billing.models import AccountKind, LeaseAccount, LeaseAccountStatus, Payout, PayoutStatus, SlaCredit
from billing.selectors.ledger import ledger_verify
from billing.services.ledger import account_get
from billing.services.metering import usage_ingest
from billing.services.payouts import payout_create, payout_send
from billing.services.settlement import lease_account_open, lease_settle_final, usage_settle_pending
from billing.services.wallet import escrow_hold, wallet_credit
from common.errors import ValidationFailed
from tests.billing.helpers import heartbeats_until
from tests.factories import CustomerFactory, ProviderFactory

_refs = itertools.count(1_000_000)


class Books(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.customers: list[Any] = [CustomerFactory().user for _ in range(2)]
        self.providers: list[Any] = [ProviderFactory().user for _ in range(2)]
        self.revenue0 = account_get(kind=AccountKind.PLATFORM_REVENUE).balance
        self.reserve0 = account_get(kind=AccountKind.RESERVE_FUND).balance
        self.topped_up = 0
        self.leases: dict[int, dict[str, Any]] = {}  # ref → {customer, hold, node, sent: {seq: ms}, closed}
        self.outbox: list[tuple[int, dict[str, Any]]] = []  # (node, report) heartbeats in flight
        self.rng = random.Random(0)

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @rule(who=st.integers(0, 1), dollars=st.integers(1, 500))
    def top_up(self, who: int, dollars: int) -> None:
        wallet_credit(user=self.customers[who], amount_micros=dollars * 1_000_000, key=f"t:{next(_refs)}")
        self.topped_up += dollars * 1_000_000

    @rule(
        who=st.integers(0, 1),
        provider=st.integers(0, 1),
        price=st.integers(0, 9_999_999),
        gpus=st.integers(1, 8),
        hold=st.integers(1, 50_000_000),
    )
    def book(self, who: int, provider: int, price: int, gpus: int, hold: int) -> None:
        ref = next(_refs)
        try:
            escrow_hold(user=self.customers[who], amount_micros=hold, key=f"hold:{ref}")
        except InsufficientFunds:
            return
        node = ref % 7
        lease_account_open(
            lease_ref=ref,
            job_ref=ref,
            customer_user=self.customers[who],
            provider_user=self.providers[provider],
            node_id=node,
            price_micros=price,
            gpu_count=gpus,
            hold_micros=hold,
            active_from=timezone.now() - timedelta(days=30),  # the broker saw it run long enough for any usage here
        )
        heartbeats_until(node_id=node, until=timezone.now())
        self.leases[ref] = {"customer": self.customers[who], "hold": hold, "node": node, "sent": {}, "closed": False}

    @precondition(lambda self: self.leases)
    @rule(
        data=st.data(),
        n=st.integers(1, 5),
        ms=st.integers(0, 3_600_000),
        state=st.sampled_from(["running", "running", "failed"]),
    )
    def heartbeat(self, data: st.DataObject, n: int, ms: int, state: str) -> None:
        ref = data.draw(st.sampled_from(sorted(self.leases)))
        lease = self.leases[ref]
        for _ in range(n):
            seq = len(lease["sent"]) + len([1 for r, _ in self.outbox if r == ref])
            report = {"lease_id": ref, "seq": seq, "gpu_seconds": f"{ms / 1000:.3f}", "state": state}
            self.outbox.append((ref, report))

    @precondition(lambda self: self.outbox)
    @rule(data=st.data(), duplicate=st.booleans())
    def deliver(self, data: st.DataObject, duplicate: bool) -> None:
        """Deliver a random subset of in-flight heartbeats in random order, some twice."""
        k = data.draw(st.integers(1, len(self.outbox)))
        self.rng.shuffle(self.outbox)
        batch, self.outbox = self.outbox[:k], self.outbox[k:]
        reports = [r for _, r in batch] + ([r for _, r in batch[: k // 2 + 1]] if duplicate else [])
        for ref, report in batch:
            lease = self.leases[ref]
            if not lease["closed"] and report["state"] == "running":
                lease["sent"][report["seq"]] = int(float(report["gpu_seconds"]) * 1000)
        by_node: dict[int, list[dict[str, Any]]] = {}
        for report in reports:
            by_node.setdefault(self.leases[report["lease_id"]]["node"], []).append(report)
        for node, rs in by_node.items():
            usage_ingest(node_id=node, reports=rs)

    @rule()
    def settle(self) -> None:
        usage_settle_pending()

    def _close(self, data: st.DataObject, failed: bool) -> None:
        open_refs = sorted(r for r, lease in self.leases.items() if not lease["closed"])
        if not open_refs:
            return
        ref = data.draw(st.sampled_from(open_refs))
        lease = self.leases[ref]
        lease_settle_final(
            lease_ref=ref,
            job_ref=ref,
            customer_user=lease["customer"],
            release_unused_hold_micros=lease["hold"],
            failed=failed,
        )
        lease["closed"] = True

    @rule(data=st.data())
    def cancel_or_end(self, data: st.DataObject) -> None:
        self._close(data, failed=False)

    @rule(data=st.data())
    def node_fails(self, data: st.DataObject) -> None:
        self._close(data, failed=True)

    @rule(provider=st.integers(0, 1))
    def payout(self, provider: int) -> None:
        try:
            payout = payout_create(provider_user=self.providers[provider])
        except ValidationFailed:
            return
        payout_send(payout_id=payout.pk)

    @invariant()
    def books_balance(self) -> None:
        report = ledger_verify()
        assert report.ok, report.violations
        accounts = LeaseAccount.objects.filter(lease_ref__in=list(self.leases))
        sums = accounts.aggregate(
            c=Sum("charged_micros"), f=Sum("fee_micros"), r=Sum("reserve_micros"), p=Sum("provider_micros")
        )
        charged, fee, reserve, share = (sums[k] or 0 for k in "cfrp")
        assert charged == fee + reserve + share
        sla = SlaCredit.objects.filter(lease_account__in=accounts).aggregate(
            c=Sum("credit_micros"), p=Sum("penalty_micros")
        )
        credits, penalties = sla["c"] or 0, sla["p"] or 0
        paid = (
            Payout.objects.filter(provider__in=self.providers, status=PayoutStatus.PAID).aggregate(
                s=Sum("amount_micros")
            )["s"]
            or 0
        )
        assert account_get(kind=AccountKind.PLATFORM_REVENUE).balance - self.revenue0 == fee
        assert account_get(kind=AccountKind.RESERVE_FUND).balance - self.reserve0 == reserve - credits + penalties
        payables = sum(account_get(kind=AccountKind.PROVIDER_PAYABLE, user=p).balance for p in self.providers)
        assert payables + paid == share - penalties
        held = sum(
            account_get(kind=k, user=c).balance
            for c in self.customers
            for k in (AccountKind.CUSTOMER_WALLET, AccountKind.CUSTOMER_ESCROW)
        )
        assert held == self.topped_up - charged + credits
        for acct in accounts:
            lease = self.leases[acct.lease_ref]
            assert acct.charged_micros <= lease["hold"]
            if acct.status == LeaseAccountStatus.CLOSED:
                assert acct.charged_micros + acct.released_micros <= lease["hold"]

    @invariant()
    def usage_rated_exactly_once(self) -> None:
        for acct in LeaseAccount.objects.filter(lease_ref__in=list(self.leases)):
            assert acct.rated_gpu_ms <= sum(self.leases[acct.lease_ref]["sent"].values())


@pytest.mark.django_db
def test_books_stay_exact_under_random_operations() -> None:
    run_state_machine_as_test(
        Books,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


@pytest.mark.django_db
def test_settled_usage_equals_unique_reports_after_final_settle() -> None:
    """After everything is delivered and settled, every open lease rated exactly its unique good usage."""
    machine_rng = random.Random(5)
    customer, provider = CustomerFactory().user, ProviderFactory().user
    wallet_credit(user=customer, amount_micros=10**10, key="big")
    expected = {}
    for ref in range(1, 6):
        escrow_hold(user=customer, amount_micros=10**9, key=f"h{ref}")
        lease_account_open(
            lease_ref=ref,
            job_ref=ref,
            customer_user=customer,
            provider_user=provider,
            node_id=1,
            price_micros=1_234_567,
            gpu_count=2,
            hold_micros=10**9,
            active_from=timezone.now() - timedelta(days=1),
        )
        heartbeats_until(node_id=1, until=timezone.now())
        reports = [{"lease_id": ref, "seq": s, "gpu_seconds": machine_rng.randint(0, 30)} for s in range(40)]
        expected[ref] = sum(r["gpu_seconds"] for r in reports) * 1000
        stream = reports + machine_rng.sample(reports, 20)
        machine_rng.shuffle(stream)
        for i in range(0, len(stream), 7):
            usage_ingest(node_id=1, reports=stream[i : i + 7])
            if i % 21 == 0:
                usage_settle_pending()
    usage_settle_pending()
    for acct in LeaseAccount.objects.all():
        assert acct.rated_gpu_ms == expected[acct.lease_ref]
        assert acct.charged_micros == 1_234_567 * expected[acct.lease_ref] // 3_600_000
