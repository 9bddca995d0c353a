"""A year of market in simulated time: several advances repaid from real settlements, or not.

* strong: a provider whose new, verified node earns well — repaid early, exactly principal + fee;
* failing: a provider whose nodes go offline in week 8 — collateral offline → delinquent → defaulted by policy;
* falling: a provider whose prices fall by three quarters — shortfalls flagged, delinquent, higher withholding;
* contract: a provider with no history financed against a customer's 12-month reserved contract.

Throughout: every ledger transaction sums to zero (and `ledger_verify` passes monthly), what lenders received equals
what was withheld or paid off, and each funder's receipts follow the remainder-last pro rata rule.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db.models import Sum

from billing.models import AccountKind, Entry
from billing.selectors.ledger import ledger_verify
from billing.services.wallet import wallet_credit
from broker.services.reserved import reserved_contract_book
from common.money import MICROS
from financing.models import (
    Advance,
    AdvanceEvent,
    AdvanceFunding,
    AdvanceRepayment,
    AdvanceStatus,
    Collateral,
    RepaymentKind,
)
from financing.services.advances import advances_review
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.lenders import advance_fund
from financing.services.reserved import reserved_contracts_charge_due
from marketplace.models import NodeStatus
from tests.factories import CustomerFactory, GPUModelFactory, NodeFactory, ProviderFactory
from tests.financing.support import Clock, earn, lender, staff_user

pytestmark = pytest.mark.django_db
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def receivable_credits() -> int:
    return (
        Entry.objects.filter(account__kind=AccountKind.LENDER_RECEIVABLE, amount__gt=0).aggregate(s=Sum("amount"))["s"]
        or 0
    )


def apply_and_fund(provider: Any, model: Any, count: int, staff: Any, *hand_picked: Any) -> Advance:
    app = advance_application_submit(provider_user=provider, gpu_model_slug=model.slug, count=count)
    assert app.status == "offered", (app.decline_reasons, app.arithmetic)
    advance = advance_application_approve(staff_user=staff, application_id=app.pk)
    for user in hand_picked:
        if advance.status == AdvanceStatus.FUNDING:
            advance = advance_fund(lender_user=user, advance_id=advance.pk)
    assert advance.status == AdvanceStatus.ACTIVE
    return advance


def test_a_year_of_market(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(START - timedelta(days=91))
    monkeypatch.setattr("django.utils.timezone.now", clock)
    h100 = GPUModelFactory(slug="rtx-4090")
    old = GPUModelFactory(slug="rtx-3090")
    staff = staff_user()
    auto_a = lender(capital_micros=10_000 * MICROS, mode="auto", max_per_advance_micros=3_000 * MICROS)
    auto_b = lender(capital_micros=20_000 * MICROS, mode="auto", max_per_advance_micros=3_000 * MICROS)
    picker = lender(capital_micros=5_000 * MICROS)

    providers = {name: ProviderFactory() for name in ("strong", "failing", "falling", "contract")}
    old_nodes = {
        name: NodeFactory(
            provider=p, gpu_model=old, gpu_count=4, price_micros=250_000 if name == "contract" else 300_000
        )
        for name, p in providers.items()
    }
    weekly = {"strong": 700 * MICROS, "failing": 700 * MICROS, "falling": 700 * MICROS}
    # 13 weeks of history before the year starts (the contract provider has none).
    for _ in range(13):
        for name, charge in weekly.items():
            earn(provider_user=providers[name].user, node_id=old_nodes[name].pk, charge_micros=charge)
        clock.now += timedelta(days=7)
    clock.now = START
    customer = CustomerFactory().user
    wallet_credit(user=customer, amount_micros=20_000 * MICROS, key="sim-topup")
    contract = reserved_contract_book(customer_user=customer, gpu_model_slug=old.slug, gpu_count=4, term_months=12)
    assert contract.node == old_nodes["contract"]  # the cheapest node with 4 unreserved GPUs

    adv = {
        "strong": apply_and_fund(providers["strong"].user, h100, 4, staff, picker),
        "failing": apply_and_fund(providers["failing"].user, h100, 4, staff, picker),
        "falling": apply_and_fund(providers["falling"].user, h100, 4, staff, picker),
        "contract": apply_and_fund(providers["contract"].user, h100, 1, staff, picker),
    }
    assert (
        AdvanceFunding.objects.filter(lender=auto_a).exists() and AdvanceFunding.objects.filter(lender=auto_b).exists()
    )
    new_nodes: dict[str, Any] = {}
    events_seen: list[str] = []
    for week in range(52):
        clock.now = START + timedelta(days=7 * week)
        if week == 1:  # the financed GPUs arrive: new verified nodes get tagged as collateral at the next review
            for name in ("strong", "failing", "falling"):
                new_nodes[name] = NodeFactory(provider=providers[name], gpu_model=h100, gpu_count=4)
        if week == 8:  # the failing provider's nodes go offline for good
            for node in (old_nodes["failing"], new_nodes["failing"]):
                node.status = NodeStatus.OFFLINE
                node.save(update_fields=["status"])
        for name in ("strong", "failing", "falling"):
            if name == "failing" and week >= 8:
                continue
            charge = weekly[name]
            if name == "strong" and week >= 1:
                charge = 1_400 * MICROS
            if name == "falling" and week >= 4:
                charge = 175 * MICROS  # prices fell by three quarters
            node = new_nodes.get(name, old_nodes[name])
            earn(provider_user=providers[name].user, node_id=node.pk, charge_micros=charge)
        reserved_contracts_charge_due(now=clock.now)
        advances_review(now=clock.now)
        # Invariants, every simulated week.
        assert Entry.objects.aggregate(s=Sum("amount"))["s"] == 0
        repaid = Advance.objects.aggregate(s=Sum("repaid_micros"))["s"]
        assert receivable_credits() == repaid == AdvanceRepayment.objects.aggregate(s=Sum("amount_micros"))["s"]
        assert AdvanceFunding.objects.aggregate(s=Sum("received_micros"))["s"] == repaid
        if week % 4 == 3:
            report = ledger_verify()
            assert report.ok, report.violations
        for a in Advance.objects.all():
            events_seen.append(f"{week}:{a.pk}:{a.status}")

    for a in adv.values():
        a.refresh_from_db()
    strong, failing, falling, backed = adv["strong"], adv["failing"], adv["falling"], adv["contract"]

    # Strong: repaid exactly principal + fee, withholding stopped by itself, each funder got its exact share.
    assert strong.status == AdvanceStatus.REPAID and strong.repaid_micros == strong.due_micros
    fundings = list(strong.fundings.order_by("pk"))
    for f in fundings[:-1]:
        assert f.received_micros == strong.due_micros * f.amount_micros // strong.principal_micros
    assert sum(f.received_micros for f in fundings) == strong.due_micros
    assert Collateral.objects.filter(advance=strong, node=new_nodes["strong"]).exists()
    last = AdvanceRepayment.objects.filter(advance=strong).order_by("-created_at").first()
    assert last is not None and last.created_at is not None
    assert last.created_at < clock.now - timedelta(days=28)  # stopped well before year end

    # Failing: collateral offline → delinquent after 14 days → defaulted after 45; remainder written off.
    kinds = list(AdvanceEvent.objects.filter(advance=failing).values_list("kind", flat=True))
    assert kinds.index("collateral_offline") < kinds.index("delinquent") < kinds.index("defaulted")
    assert failing.status == AdvanceStatus.DEFAULTED
    assert failing.written_off_micros == failing.due_micros - failing.repaid_micros > 0
    assert failing.remaining_micros == 0
    assert failing.closed_at is not None
    assert not AdvanceRepayment.objects.filter(advance=failing, created_at__gt=failing.closed_at).exists()

    # Falling prices: shortfalls flagged, then delinquent with a raised withhold rate (policy), never over-repaid.
    kinds = list(AdvanceEvent.objects.filter(advance=falling).values_list("kind", flat=True))
    assert "shortfall" in kinds and "delinquent" in kinds
    assert falling.repaid_micros <= falling.due_micros
    if falling.status == AdvanceStatus.DEFAULTED:
        assert falling.written_off_micros == falling.due_micros - falling.repaid_micros
    elif falling.status == AdvanceStatus.DELINQUENT:
        assert falling.withhold_bps == falling.base_withhold_bps + 1000

    # Contract-backed (no history): repaid only from contract payments, meeting its minimum progress.
    assert backed.status in (AdvanceStatus.ACTIVE, AdvanceStatus.REPAID)
    assert not AdvanceEvent.objects.filter(advance=backed, kind="shortfall").exists()
    assert backed.repaid_micros > 0
    assert set(AdvanceRepayment.objects.filter(advance=backed).values_list("source_key", flat=True)) <= {
        f"reserved:{contract.pk}:{m}" for m in range(1, 13)
    }

    # Lender receipts == withheld amounts (+ early payoffs, none here), per lender account and overall.
    withheld = AdvanceRepayment.objects.filter(kind=RepaymentKind.WITHHOLDING).aggregate(s=Sum("amount_micros"))["s"]
    assert withheld == receivable_credits()
    for user in (auto_a, auto_b, picker):
        credited = (
            Entry.objects.filter(account__kind=AccountKind.LENDER_RECEIVABLE, account__owner=user).aggregate(
                s=Sum("amount")
            )["s"]
            or 0
        )
        assert credited == (AdvanceFunding.objects.filter(lender=user).aggregate(s=Sum("received_micros"))["s"] or 0)
    assert ledger_verify().ok
    print(
        {k: (a.status, a.principal_micros, a.fee_micros, a.repaid_micros, a.written_off_micros) for k, a in adv.items()}
    )
