"""Contract-backed advances: open demand, a provider without history financed against a customer's contract,
delivery when the node is verified (the contract's payments repay the lenders first), and the deadline policy."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum
from django.utils import timezone

from billing.errors import InsufficientFunds
from billing.models import AccountKind, Entry
from billing.selectors.ledger import ledger_verify
from billing.services.ledger import account_get
from billing.services.wallet import wallet_credit
from common.errors import Conflict, ValidationFailed
from common.money import MICROS
from financing.models import (
    AdvanceStatus,
    ApplicationStatus,
    Collateral,
    ContractDemandStatus,
    PartySignalKind,
    RepaymentKind,
)
from financing.services.applications import advance_application_approve
from financing.services.demand import contract_demand_offer, contract_demand_post, demands_review
from financing.services.lenders import advance_fund
from financing.services.parties import party_signal_record
from tests.factories import CustomerFactory, ProviderFactory, UserFactory
from tests.financing.support import deliver_node, earn, lender, season, staff_user

pytestmark = pytest.mark.django_db(transaction=True)  # delivery runs on commit, as in production


def customer(wallet: int = 2_000 * MICROS, email: str = "ml@vision-lab.ai") -> Any:
    user = CustomerFactory(user=UserFactory(email=email)).user
    wallet_credit(user=user, amount_micros=wallet, key=f"w:{user.pk}")
    return user


def demand(customer_user: Any, **kw: Any) -> Any:
    terms = {"gpu_model_slug": "rtx-3090", "gpu_count": 4, "term_months": 12, "price_micros": 300_000}
    return contract_demand_post(customer_user=customer_user, **{**terms, **kw})


def funded(app: Any, staff: Any, funder: Any) -> Any:
    advance = advance_application_approve(staff_user=staff, application_id=app.pk)
    return advance_fund(lender_user=funder, advance_id=advance.pk)


def test_a_miner_without_history_is_financed_against_a_contract_and_delivery_repays_the_lenders() -> None:
    buyer, staff, funder = customer(), staff_user(), lender(capital_micros=5_000 * MICROS)
    miner = ProviderFactory(user=UserFactory(email="dana@hashfarm.io"))
    d = demand(buyer)
    assert d.monthly_micros == 657 * MICROS  # 4 × $0.30 × 730 h × (1 − 25 % for 12 months)

    app = contract_demand_offer(provider_user=miner.user, demand_id=d.pk)
    assert app.status == ApplicationStatus.OFFERED, app.decline_reasons
    # S = $545.31; 3 months prepaid (wallet $2,000), 9 at the 15 % new-customer haircut; 20 % non-delivery:
    # E = (1,635.93 + 4,171.6215) × 0.8 = $4,646.04; × 80 % / 1.10 (fee 10 %, no verified node) ≥ the $3,000 of
    # hardware: fully financed. Withhold: the lowest 5 % step repaying $3,300 within 12 months: 55 % → 11.1 months.
    assert app.principal_micros == 3_000 * MICROS and app.fee_micros == 300 * MICROS
    assert app.withhold_bps == 5500 and app.expected_payoff_months == Decimal("11.1")
    assert app.inputs["credit_haircut"] == "15% (no payment history yet)" and app.inputs["prepaid_months"] == 3
    assert any("non-delivery haircut 20%" in line for line in app.arithmetic)

    advance = funded(app, staff, funder)
    d.refresh_from_db()
    assert advance.status == AdvanceStatus.ACTIVE and d.status == ContractDemandStatus.AWARDED
    assert d.deadline_at == advance.disbursed_at + timedelta(days=45)
    assert advance.window_start is None  # minimum progress counts from delivery
    with pytest.raises(Conflict):  # awarded: nobody else's offer can be approved
        other = contract_demand_offer(provider_user=miner.user, demand_id=d.pk)
        advance_application_approve(staff_user=staff, application_id=other.pk)

    node = deliver_node(provider=miner, slug="rtx-3090", count=4, staff=staff)
    d.refresh_from_db()
    advance.refresh_from_db()
    assert d.status == ContractDemandStatus.DELIVERED and d.contract is not None and d.contract.node == node
    assert d.contract.months_paid == 1 and advance.node == node and advance.window_start is not None
    # Month 1: $657 → provider share $545.31 → 55 % = $299.9205 to the lender, first.
    assert advance.repaid_micros == 545_310_000 * 5500 // 10_000
    credited = Entry.objects.filter(account__kind=AccountKind.LENDER_RECEIVABLE, account__owner=funder)
    assert credited.aggregate(s=Sum("amount"))["s"] == advance.repaid_micros
    assert Collateral.objects.filter(advance=advance, node=node, gpu_count=4).exists()
    assert ledger_verify().ok


def test_a_contract_with_yourself_backs_nothing() -> None:
    miner = ProviderFactory(user=UserFactory(email="dana@gmail.com"))
    sock = customer(email="someone.else@outlook.com")
    for user in (miner.user, sock):
        party_signal_record(user=user, kind=PartySignalKind.NETWORK, value="81.2.69.142")
    app = contract_demand_offer(provider_user=miner.user, demand_id=demand(sock).pk)
    assert app.status == ApplicationStatus.DECLINED
    assert any(r.startswith("D7") and "same network address" in r for r in app.decline_reasons)


def test_a_contract_too_small_for_the_hardware_is_declined() -> None:
    d = demand(customer(), gpu_model_slug="rtx-4090", term_months=3, price_micros=200_000)
    app = contract_demand_offer(provider_user=ProviderFactory().user, demand_id=d.pk)
    assert app.status == ApplicationStatus.DECLINED and app.decline_reasons[0].startswith("C1")


def test_posting_demand_needs_the_first_month_and_sane_terms() -> None:
    poor = customer(wallet=100 * MICROS)
    with pytest.raises(InsufficientFunds):
        demand(poor)
    with pytest.raises(ValidationFailed):
        demand(customer(), gpu_count=0)
    with pytest.raises(ValidationFailed):
        demand(customer(), gpu_model_slug="rx-580-8gb")  # mining cards are not AI-grade
    with pytest.raises(ValidationFailed):
        demand(customer(), term_months=1)


def test_a_missed_deadline_releases_the_contract_and_recalls_the_advance() -> None:
    buyer, staff, funder = customer(), staff_user(), lender(capital_micros=5_000 * MICROS)
    miner = ProviderFactory(user=UserFactory(email="ops@hashfarm.io"))
    old = season(deliver_node(provider=miner, slug="rtx-4090", count=2, staff=staff, name="old"))
    earn(provider_user=miner.user, node_id=old.pk, charge_micros=400 * MICROS)  # $332 in its payable
    d = demand(buyer)
    advance = funded(contract_demand_offer(provider_user=miner.user, demand_id=d.pk), staff, funder)
    wallet_before = account_get(kind=AccountKind.CUSTOMER_WALLET, user=buyer).balance
    assert demands_review(now=timezone.now() + timedelta(days=44)) == 0
    assert demands_review(now=timezone.now() + timedelta(days=46)) == 1
    d.refresh_from_db()
    advance.refresh_from_db()
    assert d.status == ContractDemandStatus.RELEASED and d.status_note == "not delivered by the deadline"
    assert account_get(kind=AccountKind.CUSTOMER_WALLET, user=buyer).balance == wallet_before  # charged nothing
    recalled = advance.repayments.filter(kind=RepaymentKind.RECALL).aggregate(s=Sum("amount_micros"))["s"]
    assert recalled == 332 * MICROS
    assert account_get(kind=AccountKind.PROVIDER_PAYABLE, user=miner.user).balance == 0
    # It has another verified node: recovered from its earnings at a raised withhold rate.
    assert advance.status == AdvanceStatus.DELINQUENT
    assert advance.withhold_bps == advance.base_withhold_bps + 1000
    assert ledger_verify().ok


def test_a_missed_deadline_with_nothing_to_recover_is_written_down() -> None:
    staff, funder = staff_user(), lender(capital_micros=5_000 * MICROS)
    miner = ProviderFactory()
    advance = funded(contract_demand_offer(provider_user=miner.user, demand_id=demand(customer()).pk), staff, funder)
    demands_review(now=timezone.now() + timedelta(days=46))
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DEFAULTED and advance.written_off_micros == advance.due_micros
    assert "not delivered" in advance.events.get(kind="defaulted").message
    assert ledger_verify().ok
