"""Financing money through the gateway: lender capital by Stripe Checkout (credited on the verified webhook),
disbursement by Connect transfer, lender repayments paid out on a schedule; every movement one ledger transaction
with a deterministic key, and a retried task never pays twice."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import override_settings

from billing.gateways import stripe as stripe_gateway
from billing.models import AccountKind, LedgerTransaction
from billing.selectors.ledger import ledger_verify
from billing.services.ledger import account_get
from common.money import MICROS
from financing import tasks
from financing.models import (
    Advance,
    AdvanceStatus,
    CapitalCommitmentStatus,
    LenderPayout,
    LenderPayoutStatus,
    LenderPreference,
)
from financing.selectors.lenders import lender_balances
from financing.services.advances import advance_disburse
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.lender_payouts import lender_payouts_run
from financing.services.lenders import advance_fund, lender_capital_commit
from tests.billing.stripe_fakes import WEBHOOK_SECRET, ReplayHTTPClient, checkout_session, event, signed
from tests.factories import CustomerFactory, GPUModelFactory, NodeFactory
from tests.financing.support import earn, lender, season, staff_user

pytestmark = pytest.mark.django_db
STRIPE = {"STRIPE_SECRET_KEY": "sk_test_rigshift", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
MONDAY = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> ReplayHTTPClient:
    client = ReplayHTTPClient({})
    monkeypatch.setattr(stripe_gateway, "HTTP_CLIENT", client)
    return client


def webhook(api_client: Any, body: dict[str, Any]) -> Any:
    payload, header = signed(body)
    return api_client.post(
        "/webhooks/stripe/", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def offered_advance(*, stripe_account: str = "acct_miner") -> Advance:
    node = season(NodeFactory(gpu_model=GPUModelFactory()))
    provider = node.provider
    provider.stripe_account_id = stripe_account
    provider.save(update_fields=["stripe_account_id"])
    for _ in range(3):
        earn(provider_user=provider.user, node_id=node.pk, charge_micros=3_000 * MICROS)
    app = advance_application_submit(provider_user=provider.user, gpu_model_slug="rtx-4090", count=1)
    assert app.status == "offered", app.decline_reasons
    return advance_application_approve(staff_user=staff_user(), application_id=app.pk)


@override_settings(**STRIPE)
def test_capital_is_collected_by_checkout_and_credited_once_by_the_webhook(
    http: ReplayHTTPClient, api_client: Any
) -> None:
    funder = lender(capital_micros=0)
    http.routes[("POST", "/v1/checkout/sessions")] = [(200, checkout_session("cs_cap", 0, 500_000))]
    commitment = lender_capital_commit(lender_user=funder, amount_micros=5_000 * MICROS)
    assert commitment.status == CapitalCommitmentStatus.PENDING and commitment.checkout_url
    sent = http.requests[-1]
    assert sent.headers["Idempotency-Key"] == f"capital:{commitment.pk}"
    assert sent.form["metadata[capital_commitment_id]"] == [str(commitment.pk)]
    assert sent.form["line_items[0][price_data][unit_amount]"] == ["500000"]
    assert lender_balances(lender_user=funder)["capital"] == 0  # nothing until the webhook

    paid = checkout_session("cs_cap", 0, 500_000) | {
        "payment_status": "paid",
        "payment_intent": "pi_cap",
        "metadata": {"capital_commitment_id": str(commitment.pk)},
    }
    assert webhook(api_client, event("checkout.session.completed", paid, "evt_cap_1")).status_code == 200
    assert webhook(api_client, event("checkout.session.async_payment_succeeded", paid, "evt_cap_2")).status_code == 200
    commitment.refresh_from_db()
    assert commitment.status == CapitalCommitmentStatus.SUCCEEDED and commitment.gateway_ref == "pi_cap"
    assert lender_balances(lender_user=funder)["capital"] == 5_000 * MICROS  # once
    assert LedgerTransaction.objects.filter(idempotency_key=f"capital:{commitment.pk}").count() == 1
    assert ledger_verify().ok


@override_settings(**STRIPE)
def test_disbursement_is_a_connect_transfer_and_a_retried_task_pays_once(http: ReplayHTTPClient) -> None:
    advance = offered_advance()
    funder = lender(capital_micros=0)
    wallet_capital(funder)
    http.routes[("POST", "/v1/transfers")] = [(200, {"id": "tr_adv", "object": "transfer", "amount": 159_900})]
    advance = advance_fund(lender_user=funder, advance_id=advance.pk)
    assert advance.status == AdvanceStatus.ACTIVE and advance.disbursement_ref == "tr_adv"
    transfers = [r for r in http.requests if r.path == "/v1/transfers"]
    assert len(transfers) == 1
    assert transfers[0].headers["Idempotency-Key"] == f"advance-disburse:{advance.pk}"
    assert transfers[0].form["destination"] == ["acct_miner"] and transfers[0].form["amount"] == ["159900"]
    # The task retried (a redelivered message): it finds the advance disbursed and pays nothing more.
    assert tasks.disburse_advance(advance.pk) is True
    assert len([r for r in http.requests if r.path == "/v1/transfers"]) == 1
    assert LedgerTransaction.objects.filter(idempotency_key=f"advance-disburse:{advance.pk}").count() == 1
    assert ledger_verify().ok


@override_settings(**STRIPE)
def test_a_crash_after_the_transfer_retries_with_the_same_key(
    http: ReplayHTTPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe paid but our transaction rolled back: the retry carries the same idempotency key (Stripe answers
    with the same transfer) and the ledger moves once."""
    advance = offered_advance()
    funder = lender(capital_micros=0)
    wallet_capital(funder)
    http.routes[("POST", "/v1/transfers")] = [(200, {"id": "tr_same", "object": "transfer", "amount": 159_900})]

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("worker lost after the transfer")

    monkeypatch.setattr("financing.services.advances.collateral_tag", crash)
    with pytest.raises(RuntimeError):
        advance_fund(lender_user=funder, advance_id=advance.pk)
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.FUNDING and advance.funded_micros == 0  # all rolled back
    monkeypatch.undo()
    monkeypatch.setattr(stripe_gateway, "HTTP_CLIENT", http)
    advance_fund(lender_user=funder, advance_id=advance.pk)
    advance.refresh_from_db()
    keys = [r.headers["Idempotency-Key"] for r in http.requests if r.path == "/v1/transfers"]
    assert keys == [f"advance-disburse:{advance.pk}"] * 2 and advance.disbursement_ref == "tr_same"
    assert LedgerTransaction.objects.filter(kind="advance_disbursement").count() == 1
    assert ledger_verify().ok


@override_settings(**STRIPE)
def test_a_refused_disbursement_stays_funded_until_the_retry_succeeds(http: ReplayHTTPClient) -> None:
    advance = offered_advance(stripe_account="")
    funder = lender(capital_micros=0)
    wallet_capital(funder)
    advance = advance_fund(lender_user=funder, advance_id=advance.pk)
    assert advance.status == AdvanceStatus.FUNDING and advance.funded_micros == advance.principal_micros
    assert not LedgerTransaction.objects.filter(kind="advance_disbursement").exists()
    assert tasks.disburse_funded_task() == 0  # still no connected account
    advance.provider.provider.stripe_account_id = "acct_late"
    advance.provider.provider.save(update_fields=["stripe_account_id"])
    http.routes[("POST", "/v1/transfers")] = [(200, {"id": "tr_late", "object": "transfer", "amount": 159_900})]
    assert tasks.disburse_funded_task() == 1
    assert advance_disburse(advance_id=advance.pk).disbursement_ref == "tr_late"
    assert ledger_verify().ok


def wallet_capital(funder: Any) -> None:
    """Local capital for a lender under the Stripe settings (as if its Checkout had been paid)."""
    with override_settings(STRIPE_SECRET_KEY=""):
        lender_capital_commit(lender_user=funder, amount_micros=5_000 * MICROS)


def repaid_lender() -> Any:
    """A lender whose advance has been repaid in part from settlements (local gateway)."""
    advance = offered_advance()
    funder = lender(capital_micros=5_000 * MICROS)
    advance = advance_fund(lender_user=funder, advance_id=advance.pk)
    node = NodeFactory(provider=advance.provider.provider, gpu_model=advance.gpu_model)
    earn(provider_user=advance.provider, node_id=node.pk, charge_micros=2_000 * MICROS, customer=CustomerFactory().user)
    return funder


def test_lender_repayments_are_paid_out_weekly_once() -> None:
    funder = repaid_lender()
    received = account_get(kind=AccountKind.LENDER_RECEIVABLE, user=funder).balance
    assert received > 0
    assert lender_payouts_run(now=MONDAY.replace(day=5)) == []  # Tuesday, below the threshold
    [payout] = lender_payouts_run(now=MONDAY)
    assert payout.status == LenderPayoutStatus.PAID and payout.amount_micros == received - received % 10_000
    assert lender_payouts_run(now=MONDAY) == []  # the hourly run again: nothing more
    assert account_get(kind=AccountKind.LENDER_RECEIVABLE, user=funder).balance == received % 10_000
    assert ledger_verify().ok


@override_settings(**STRIPE)
def test_lender_payout_is_a_connect_transfer_retried_once_and_reversible(
    http: ReplayHTTPClient, api_client: Any
) -> None:
    with override_settings(STRIPE_SECRET_KEY=""):
        funder = repaid_lender()
    LenderPreference.objects.filter(lender=funder).update(stripe_account_id="acct_lend", payout_account_ready=True)
    received = account_get(kind=AccountKind.LENDER_RECEIVABLE, user=funder).balance
    http.routes[("POST", "/v1/transfers")] = [(200, {"id": "tr_lend", "object": "transfer"})]
    [payout] = lender_payouts_run(now=MONDAY)
    assert payout.status == LenderPayoutStatus.PAID and payout.gateway_ref == "tr_lend"
    assert http.requests[-1].headers["Idempotency-Key"] == f"lender-payout:{payout.pk}"
    assert tasks.send_lender_payout(payout.pk) == LenderPayoutStatus.PAID  # a retried task: no second transfer
    assert len([r for r in http.requests if r.path == "/v1/transfers"]) == 1
    reversal = {"id": "tr_lend", "object": "transfer", "amount_reversed": 1, "reversed": True}
    assert webhook(api_client, event("transfer.reversed", reversal, "evt_rev_lend")).status_code == 200
    payout.refresh_from_db()
    assert payout.status == LenderPayoutStatus.FAILED
    assert account_get(kind=AccountKind.LENDER_RECEIVABLE, user=funder).balance == received
    assert LenderPayout.objects.count() == 1
    assert ledger_verify().ok
