"""Reserved contracts: booking on a node with capacity, monthly charges, lapse, matcher holds, as advance backing."""

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from billing.errors import InsufficientFunds
from billing.models import Account, AccountKind
from billing.selectors.ledger import ledger_verify
from billing.services.wallet import wallet_credit
from broker.services.matching import snapshot_take
from broker.services.reserved import reserved_contract_book
from common.errors import Conflict, ValidationFailed
from common.money import MICROS
from financing.models import AdvanceStatus, ReservedContract, ReservedContractStatus
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.lenders import advance_fund
from financing.services.reserved import reserved_contract_charge_due, reserved_monthly_micros
from tests.factories import CustomerFactory, GPUModelFactory, NodeFactory
from tests.financing.support import lender, staff_user

pytestmark = pytest.mark.django_db


def wallet(user: Any) -> int:
    return Account.objects.get(kind=AccountKind.CUSTOMER_WALLET, owner=user).balance


def funded_customer(amount: int = 10_000 * MICROS) -> Any:
    user = CustomerFactory().user
    wallet_credit(user=user, amount_micros=amount, key=f"rc-topup:{user.pk}")
    return user


def test_book_picks_cheapest_node_charges_month_one_with_discount() -> None:
    model = GPUModelFactory()
    NodeFactory(gpu_model=model, price_micros=500_000)
    cheap = NodeFactory(gpu_model=model, price_micros=400_000)
    customer = funded_customer()
    c = reserved_contract_book(customer_user=customer, gpu_model_slug=model.slug, gpu_count=2, term_months=12)
    assert c.node == cheap and c.discount_bps == 2500 and c.months_paid == 1
    assert c.monthly_micros == reserved_monthly_micros(gpu_count=2, list_price_micros=400_000, discount_bps=2500)
    assert c.monthly_micros == 438 * MICROS  # 2 × $0.40 × 730 h × 75 %
    assert wallet(customer) == 10_000 * MICROS - c.monthly_micros
    assert Account.objects.get(kind=AccountKind.PROVIDER_PAYABLE, owner=cheap.provider.user).balance == (
        c.monthly_micros - c.monthly_micros * 15 // 100 - c.monthly_micros * 2 // 100
    )
    assert ledger_verify().ok


def test_capacity_is_exclusive_and_bad_input_refused() -> None:
    model = GPUModelFactory()
    NodeFactory(gpu_model=model, gpu_count=4)
    customer = funded_customer()
    reserved_contract_book(customer_user=customer, gpu_model_slug=model.slug, gpu_count=3, term_months=3)
    with pytest.raises(Conflict):
        reserved_contract_book(customer_user=customer, gpu_model_slug=model.slug, gpu_count=2, term_months=3)
    reserved_contract_book(customer_user=customer, tier="inference", gpu_count=1, term_months=3)  # ≥ inference
    for kwargs in ({"gpu_count": 0}, {"term_months": 0}, {"term_months": 99}, {"gpu_model_slug": "nope"}):
        args = {"gpu_model_slug": model.slug, "gpu_count": 1, "term_months": 3, **kwargs}
        with pytest.raises(ValidationFailed):
            reserved_contract_book(customer_user=customer, **args)
    assert ReservedContract.objects.count() == 2


def test_wallet_short_books_nothing() -> None:
    model = GPUModelFactory()
    NodeFactory(gpu_model=model)
    with pytest.raises(InsufficientFunds):
        reserved_contract_book(
            customer_user=funded_customer(10 * MICROS), gpu_model_slug=model.slug, gpu_count=1, term_months=6
        )
    assert ReservedContract.objects.count() == 0


def test_monthly_charges_then_lapse_when_wallet_empty() -> None:
    model = GPUModelFactory()
    NodeFactory(gpu_model=model)
    customer = funded_customer(1_000 * MICROS)
    c = reserved_contract_book(customer_user=customer, gpu_model_slug=model.slug, gpu_count=1, term_months=6)
    assert c.monthly_micros == 248_200_000  # $0.40 × 730 × 85 %
    c = reserved_contract_charge_due(contract_id=c.pk, now=c.starts_at + timedelta(days=29))
    assert c.months_paid == 1
    c = reserved_contract_charge_due(contract_id=c.pk, now=c.starts_at + timedelta(days=61))
    assert c.months_paid == 3 and c.status == ReservedContractStatus.ACTIVE
    c = reserved_contract_charge_due(contract_id=c.pk, now=c.starts_at + timedelta(days=95))
    assert c.months_paid == 4
    c = reserved_contract_charge_due(contract_id=c.pk, now=c.starts_at + timedelta(days=125))
    assert c.status == ReservedContractStatus.LAPSED and c.months_paid == 4
    assert ledger_verify().ok


def test_matcher_snapshot_holds_reserved_slots() -> None:
    model = GPUModelFactory()
    node = NodeFactory(gpu_model=model, gpu_count=4)
    reserved_contract_book(customer_user=funded_customer(), gpu_model_slug=model.slug, gpu_count=3, term_months=1)
    snap = snapshot_take(now=timezone.now())
    i = snap.node_ids.index(node.pk)
    free_now = np.isneginf(snap.nodes.slot_free_at[i, :4])
    assert free_now.tolist() == [True, False, False, False]


def test_contract_backs_an_advance_and_its_payments_repay_it() -> None:
    model = GPUModelFactory()
    node = NodeFactory(gpu_model=model)
    provider = node.provider.user  # no earnings history at all
    customer = funded_customer(20_000 * MICROS)
    c = reserved_contract_book(customer_user=customer, gpu_model_slug=model.slug, gpu_count=4, term_months=12)
    app = advance_application_submit(provider_user=provider, gpu_model_slug=model.slug, count=1)
    assert app.status == "offered" and app.reserved_contract == c
    advance = advance_application_approve(staff_user=staff_user(), application_id=app.pk)
    advance = advance_fund(lender_user=lender(capital_micros=5_000 * MICROS), advance_id=advance.pk)
    assert advance.status == AdvanceStatus.ACTIVE
    c = reserved_contract_charge_due(contract_id=c.pk, now=c.starts_at + timedelta(days=31))
    advance.refresh_from_db()
    share = c.monthly_micros - c.monthly_micros * 15 // 100 - c.monthly_micros * 2 // 100
    assert advance.repaid_micros == share * advance.withhold_bps // 10_000
    assert ledger_verify().ok


def test_reserved_contract_api(
    customer: Any, customer_client: Any, other_customer_client: Any, provider_client: Any
) -> None:
    model = GPUModelFactory()
    NodeFactory(gpu_model=model, gpu_count=4)
    url = "/api/v1/reserved-contracts/"
    r = customer_client.post(url, {"gpu_model": model.slug, "count": 2, "term_months": 6})
    assert r.status_code == 402  # empty wallet: nothing booked
    assert ReservedContract.objects.count() == 0
    wallet_credit(user=customer.user, amount_micros=1_000 * MICROS, key="api-rc")
    r = customer_client.post(url, {"gpu_model": model.slug, "count": 2, "term_months": 6})
    assert r.status_code == 201, r.json()
    assert r.json()["monthly"] == "496.400000" and r.json()["discount"] == "0.15"
    assert customer_client.post(url, {"gpu_model": model.slug, "count": 3, "term_months": 6}).status_code == 409
    assert customer_client.post(url, {"gpu_model": model.slug, "count": 0, "term_months": 6}).status_code == 400
    assert customer_client.post(url, {"gpu_model": "nope", "count": 1, "term_months": 6}).status_code == 400
    assert customer_client.post(url, {"count": 1, "term_months": 6}).status_code == 400
    assert [c["id"] for c in customer_client.get(url).json()] == [r.json()["id"]]
    assert other_customer_client.get(url).json() == []
    assert provider_client.get(url).status_code == 403
