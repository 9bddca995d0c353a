"""The Stripe gateway and webhooks, driven through the real `stripe` library with a replaying HTTP client."""

import time
from typing import Any

import pytest
from django.test import override_settings

from billing.gateways import get_gateway
from billing.gateways import stripe as stripe_gateway
from billing.models import AccountKind, Payout, PayoutStatus, StripeEvent, TopUp, TopUpStatus
from billing.selectors.ledger import ledger_verify
from billing.selectors.wallet import wallet_balance
from billing.services.ledger import account_get, ledger_transfer
from billing.services.payouts import payout_create, payout_send, provider_payout_onboard
from billing.services.topups import topup_create
from billing.services.wallet import escrow_hold
from tests.billing.stripe_fakes import WEBHOOK_SECRET, ReplayHTTPClient, checkout_session, event, signed
from tests.factories import CustomerFactory, ProviderFactory

pytestmark = pytest.mark.django_db
STRIPE = {"STRIPE_SECRET_KEY": "sk_test_rigshift", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> ReplayHTTPClient:
    client = ReplayHTTPClient({})
    monkeypatch.setattr(stripe_gateway, "HTTP_CLIENT", client)
    return client


def post_webhook(api_client: Any, payload: str, header: str | None) -> Any:
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
    return api_client.post("/webhooks/stripe/", data=payload, content_type="application/json", **extra)


def stripe_topup(http: ReplayHTTPClient, user: Any, cents: int = 5000) -> TopUp:
    next_id = (TopUp.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    http.routes[("POST", "/v1/checkout/sessions")] = [(200, checkout_session(f"cs_{next_id}", next_id, cents))]
    return topup_create(user=user, amount_micros=cents * 10_000)


@override_settings(**STRIPE)
def test_topup_creates_checkout_session_with_deterministic_idempotency_key(http: ReplayHTTPClient) -> None:
    assert get_gateway().name == "stripe"
    user = CustomerFactory().user
    topup = stripe_topup(http, user)
    assert topup.status == TopUpStatus.PENDING
    assert topup.checkout_url.startswith("https://checkout.stripe.com/")
    sent = http.requests[-1]
    assert sent.path == "/v1/checkout/sessions"
    assert sent.headers["Idempotency-Key"] == f"topup:{topup.pk}"
    assert sent.headers["Authorization"] == "Bearer sk_test_rigshift"
    assert sent.form["line_items[0][price_data][unit_amount]"] == ["5000"]
    assert sent.form["metadata[topup_id]"] == [str(topup.pk)]
    # a retried call carries the same key, so Stripe answers with the same session
    stripe_gateway.StripeGateway().create_topup(topup)
    assert http.requests[-1].headers["Idempotency-Key"] == f"topup:{topup.pk}"
    assert wallet_balance(user=user).available_micros == 0  # nothing until the webhook


@override_settings(**STRIPE)
def test_payment_webhook_credits_once_and_replay_changes_nothing(http: ReplayHTTPClient, api_client: Any) -> None:
    user = CustomerFactory().user
    topup = stripe_topup(http, user)
    paid = checkout_session(topup.gateway_ref, topup.pk) | {"payment_status": "paid", "payment_intent": "pi_1"}
    payload, header = signed(event("checkout.session.completed", paid, "evt_paid"))
    response = post_webhook(api_client, payload, header)
    assert response.status_code == 200, response.content
    assert wallet_balance(user=user).available_micros == 50_000_000
    topup.refresh_from_db()
    assert (topup.status, topup.gateway_ref) == (TopUpStatus.SUCCEEDED, "pi_1")
    # replay of the same event: 200, no change
    assert post_webhook(api_client, payload, header).json()["outcome"] == "duplicate event: ignored"
    # a different event for the same payment (payment_intent.succeeded): still credited once
    pi = {"id": "pi_1", "object": "payment_intent", "amount": 5000, "metadata": {"topup_id": str(topup.pk)}}
    payload2, header2 = signed(event("payment_intent.succeeded", pi, "evt_pi"))
    assert post_webhook(api_client, payload2, header2).status_code == 200
    assert wallet_balance(user=user).available_micros == 50_000_000
    assert StripeEvent.objects.count() == 2
    assert ledger_verify().ok


@override_settings(**STRIPE)
@pytest.mark.parametrize("attack", ["forged", "stale", "missing", "tampered"])
def test_forged_or_stale_webhook_is_400_and_changes_nothing(
    http: ReplayHTTPClient, api_client: Any, attack: str
) -> None:
    user = CustomerFactory().user
    topup = stripe_topup(http, user)
    body = event(
        "checkout.session.completed", checkout_session(topup.gateway_ref, topup.pk) | {"payment_status": "paid"}
    )
    if attack == "forged":
        payload, header = signed(body, secret="whsec_attacker")
    elif attack == "stale":
        payload, header = signed(body, timestamp=int(time.time()) - 301)
    elif attack == "missing":
        payload, header = signed(body)[0], None
    else:
        payload, header = signed(body)
        payload = payload.replace('"paid"', '"paid" ', 1)
    response = post_webhook(api_client, payload, header)
    assert response.status_code == 400
    assert "signature" in response.json()["detail"].lower()
    assert StripeEvent.objects.count() == 0
    assert wallet_balance(user=user).available_micros == 0
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PENDING


@override_settings(**STRIPE)
def test_refund_and_dispute_debit_the_wallet(http: ReplayHTTPClient, api_client: Any) -> None:
    user = CustomerFactory().user
    topup = stripe_topup(http, user, cents=10_000)
    paid = checkout_session(topup.gateway_ref, topup.pk) | {"payment_status": "paid", "payment_intent": "pi_9"}
    post_webhook(api_client, *signed(event("checkout.session.completed", paid, "evt_a")))
    charge = {"id": "ch_9", "object": "charge", "payment_intent": "pi_9", "amount": 10_000, "amount_refunded": 2_500}
    assert post_webhook(api_client, *signed(event("charge.refunded", charge, "evt_r1"))).status_code == 200
    assert wallet_balance(user=user).available_micros == 75_000_000
    # a second partial refund reports the cumulative amount
    charge2 = charge | {"amount_refunded": 3_000}
    post_webhook(api_client, *signed(event("charge.refunded", charge2, "evt_r2")))
    assert wallet_balance(user=user).available_micros == 70_000_000
    # the customer holds most of it in escrow; a dispute takes what the wallet has, the platform absorbs the rest
    escrow_hold(user=user, amount_micros=60_000_000, key="hold-x")
    dispute = {"id": "dp_1", "object": "dispute", "charge": "ch_9", "payment_intent": "pi_9", "amount": 7_000}
    post_webhook(api_client, *signed(event("charge.dispute.created", dispute, "evt_d1")))
    assert wallet_balance(user=user).available_micros == 0
    assert account_get(kind=AccountKind.PLATFORM_REVENUE).balance == -60_000_000
    won = dispute | {"status": "won"}
    post_webhook(api_client, *signed(event("charge.dispute.closed", won, "evt_d2")))
    assert wallet_balance(user=user).available_micros == 70_000_000
    assert ledger_verify().ok


@override_settings(**STRIPE)
def test_connect_onboarding_and_account_updated(http: ReplayHTTPClient, api_client: Any) -> None:
    provider = ProviderFactory(country="DE")
    http.routes[("POST", "/v1/accounts")] = [(200, {"id": "acct_1", "object": "account", "payouts_enabled": False})]
    http.routes[("POST", "/v1/account_links")] = [
        (200, {"object": "account_link", "url": "https://connect.stripe.com/setup/e/acct_1/x", "expires_at": 1})
    ]
    url = provider_payout_onboard(provider_user=provider.user)
    assert url.startswith("https://connect.stripe.com/")
    assert http.requests[0].headers["Idempotency-Key"] == f"connect-account:{provider.pk}"
    assert http.requests[0].form["capabilities[transfers][requested]"] == ["true"]
    provider.refresh_from_db()
    assert provider.stripe_account_id == "acct_1" and not provider.payout_account_ready
    provider_payout_onboard(provider_user=provider.user)  # account reused: only a new link
    assert [r.path for r in http.requests] == ["/v1/accounts", "/v1/account_links", "/v1/account_links"]
    account = {"id": "acct_1", "object": "account", "payouts_enabled": True, "details_submitted": True}
    post_webhook(api_client, *signed(event("account.updated", account, "evt_acct")))
    provider.refresh_from_db()
    assert provider.payout_account_ready


def fund_payable(user: Any, micros: int) -> None:
    ledger_transfer(
        key=f"fund:{user.pk}",
        kind="test",
        legs=[
            (account_get(kind=AccountKind.PLATFORM_REVENUE), -micros),
            (account_get(kind=AccountKind.PROVIDER_PAYABLE, user=user), micros),
        ],
    )


@override_settings(**STRIPE)
def test_payout_transfer_and_reversal(http: ReplayHTTPClient, api_client: Any) -> None:
    provider = ProviderFactory(stripe_account_id="acct_7", payout_account_ready=True)
    fund_payable(provider.user, 12_345_678)
    http.routes[("POST", "/v1/transfers")] = [
        (200, {"id": "tr_1", "object": "transfer", "amount": 1234, "destination": "acct_7"})
    ]
    payout = payout_send(payout_id=payout_create(provider_user=provider.user).pk)
    assert (payout.status, payout.gateway_ref, payout.amount_micros) == (PayoutStatus.PAID, "tr_1", 12_340_000)
    sent = http.requests[-1]
    assert sent.form["amount"] == ["1234"] and sent.form["destination"] == ["acct_7"]
    assert sent.headers["Idempotency-Key"] == f"payout:{payout.pk}:payout:{payout.pk}"
    payable = account_get(kind=AccountKind.PROVIDER_PAYABLE, user=provider.user)
    payable.refresh_from_db()
    assert payable.balance == 5_678  # sub-cent remainder stays
    reversal = {"id": "tr_1", "object": "transfer", "amount": 1234, "amount_reversed": 1234, "reversed": True}
    post_webhook(api_client, *signed(event("transfer.reversed", reversal, "evt_rev")))
    payout.refresh_from_db()
    payable.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED and "reversed" in payout.failure_reason
    assert payable.balance == 12_345_678
    assert ledger_verify().ok


@override_settings(**STRIPE)
def test_failed_transfer_returns_money_to_payable_visibly(http: ReplayHTTPClient) -> None:
    provider = ProviderFactory(stripe_account_id="acct_8", payout_account_ready=True)
    fund_payable(provider.user, 20_000_000)
    error = {
        "error": {
            "type": "invalid_request_error",
            "code": "balance_insufficient",
            "message": "Insufficient funds in Stripe account.",
        }
    }
    http.routes[("POST", "/v1/transfers")] = [(400, error)]
    payout = payout_send(payout_id=payout_create(provider_user=provider.user).pk)
    assert payout.status == PayoutStatus.FAILED
    assert "Insufficient funds" in payout.failure_reason
    assert account_get(kind=AccountKind.PROVIDER_PAYABLE, user=provider.user).balance == 20_000_000
    assert payout_send(payout_id=payout.pk).status == PayoutStatus.FAILED  # retry: no second attempt
    assert len([r for r in http.requests if r.path == "/v1/transfers"]) == 1
    assert Payout.objects.get().reversal_transaction is not None
    assert ledger_verify().ok


@override_settings(**STRIPE)
def test_payment_failed_and_unhandled_events(http: ReplayHTTPClient, api_client: Any) -> None:
    user = CustomerFactory().user
    topup = stripe_topup(http, user)
    pi = {"id": "pi_x", "object": "payment_intent", "metadata": {"topup_id": str(topup.pk)}}
    assert post_webhook(api_client, *signed(event("payment_intent.payment_failed", pi, "evt_f"))).status_code == 200
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.FAILED
    other = post_webhook(api_client, *signed(event("customer.created", {"id": "cus_1", "object": "customer"}, "evt_o")))
    assert other.status_code == 200 and other.json()["outcome"] == "customer.created: not handled"
    assert wallet_balance(user=user).available_micros == 0
