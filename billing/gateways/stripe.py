"""The Stripe gateway: wallet top-ups by Checkout, Connect onboarding, payouts as Connect transfers; for apps above
billing, a generic Checkout (`create_checkout`: lender capital) and Connect transfer (`send_transfer`: advance
disbursements, lender repayments), each with the caller's deterministic idempotency key.

Every call goes through `stripe.StripeClient` with a deterministic idempotency key derived from the
billing object it realises (`topup:<id>`, `connect-account:<provider id>`, `payout:<id>:<ledger key>`),
so a retried Celery task or request can never create a second charge or transfer. Stripe is the rail,
not the book: the ledger moves when a verified webhook (services.stripe_webhooks) or the transfer's
answer says so. Tests inject an HTTP client (`http_client=`) that replays recorded Stripe responses.
"""

from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings

from billing.gateways.base import GatewayResult
from billing.models import Payout, PayoutStatus, TopUp, TopUpStatus

MICROS_PER_CENT = 10_000
# The HTTP client new gateways use (None: the library's default). Tests set a recording/replaying client.
HTTP_CLIENT: stripe.HTTPClient | None = None


def micros_to_cents(micros: int) -> int:
    """Exact conversion for amounts already whole cents (top-ups and payouts are)."""
    if micros % MICROS_PER_CENT:
        raise ValueError(f"{micros} micro-dollars is not a whole number of cents")
    return micros // MICROS_PER_CENT


@dataclass(frozen=True)
class PayoutResult:
    """What the gateway said about a payout: PAID/IN_TRANSIT with its reference, or FAILED with a reason."""

    status: PayoutStatus
    ref: str = ""
    failure_reason: str = ""


@dataclass(frozen=True)
class OnboardingLink:
    account_id: str
    url: str


@dataclass(frozen=True)
class CheckoutSession:
    ref: str
    url: str


class StripeGateway:
    name = "stripe"

    def __init__(self, *, api_key: str | None = None, http_client: stripe.HTTPClient | None = None) -> None:
        self.client = stripe.StripeClient(
            api_key or settings.STRIPE_SECRET_KEY, http_client=http_client or HTTP_CLIENT, max_network_retries=2
        )

    @staticmethod
    def _site(path: str) -> str:
        base = getattr(settings, "RIGSHIFT_PUBLIC_URL", "") or "http://localhost:8000"
        return base.rstrip("/") + path

    def create_topup(self, topup: TopUp) -> GatewayResult:
        """A Checkout Session for the top-up; the wallet is credited by the verified webhook, not here."""
        metadata = {"topup_id": str(topup.pk), "user_id": str(topup.user_id)}
        params: Any = {
            "mode": "payment",
            "client_reference_id": str(topup.pk),
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": topup.currency.lower(),
                        "unit_amount": micros_to_cents(topup.amount_micros),
                        "product_data": {"name": "RigShift wallet top-up"},
                    },
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": self._site(f"/app/wallet/?topup={topup.pk}"),
            "cancel_url": self._site(f"/app/wallet/?topup={topup.pk}&cancelled=1"),
        }
        session = self.client.v1.checkout.sessions.create(
            params=params, options={"idempotency_key": f"topup:{topup.pk}"}
        )
        return GatewayResult(status=TopUpStatus.PENDING, ref=session.id, checkout_url=session.url or "")

    def connect_onboarding(
        self,
        *,
        provider_pk: int,
        email: str,
        country: str,
        account_id: str = "",
        role: str = "provider",
        return_path: str = "/provider/earnings/",
    ) -> OnboardingLink:
        """Create the Express connected account (once per role and id) and an onboarding account link."""
        if not account_id:
            key = f"connect-account:{provider_pk}" if role == "provider" else f"connect-account:{role}:{provider_pk}"
            account = self.client.v1.accounts.create(
                params={
                    "type": "express",
                    "country": country or "US",
                    "email": email,
                    "capabilities": {"transfers": {"requested": True}},
                    "metadata": {f"{role}_id": str(provider_pk)},
                },
                options={"idempotency_key": key},
            )
            account_id = account.id
        link = self.client.v1.account_links.create(
            params={
                "account": account_id,
                "type": "account_onboarding",
                "refresh_url": self._site(f"{return_path}?onboarding=refresh"),
                "return_url": self._site(f"{return_path}?onboarding=done"),
            }
        )
        return OnboardingLink(account_id=account_id, url=link.url)

    def create_checkout(
        self, *, amount_micros: int, key: str, product: str, metadata: dict[str, str], return_path: str
    ) -> CheckoutSession:
        """A Checkout Session collecting `amount_micros` (whole cents); the money counts only when the verified
        webhook says it is paid. `key` is the idempotency key and the session's client reference."""
        params: Any = {
            "mode": "payment",
            "client_reference_id": key,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": micros_to_cents(amount_micros),
                        "product_data": {"name": product},
                    },
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": self._site(f"{return_path}?checkout=done"),
            "cancel_url": self._site(f"{return_path}?checkout=cancelled"),
        }
        session = self.client.v1.checkout.sessions.create(params=params, options={"idempotency_key": key})
        return CheckoutSession(ref=session.id, url=session.url or "")

    def send_transfer(
        self, *, amount_micros: int, destination: str, key: str, metadata: dict[str, str]
    ) -> PayoutResult:
        """A Connect transfer of `amount_micros` (whole cents) to a connected account, idempotent per `key`."""
        if not destination:
            return PayoutResult(status=PayoutStatus.FAILED, failure_reason="no connected Stripe account")
        try:
            transfer = self.client.v1.transfers.create(
                params={
                    "amount": micros_to_cents(amount_micros),
                    "currency": "usd",
                    "destination": destination,
                    "transfer_group": key,
                    "metadata": metadata,
                },
                options={"idempotency_key": key},
            )
        except stripe.StripeError as exc:
            reason = getattr(exc, "user_message", None) or str(exc) or exc.__class__.__name__
            return PayoutResult(status=PayoutStatus.FAILED, failure_reason=f"Stripe: {reason}"[:300])
        return PayoutResult(status=PayoutStatus.PAID, ref=transfer.id)

    def send_payout(self, payout: Payout, *, destination: str) -> PayoutResult:
        """A transfer of the payout to the provider's connected account."""
        if not destination:
            return PayoutResult(status=PayoutStatus.FAILED, failure_reason="no connected Stripe account")
        key = payout.ledger_transaction.idempotency_key if payout.ledger_transaction else str(payout.pk)
        try:
            transfer = self.client.v1.transfers.create(
                params={
                    "amount": micros_to_cents(payout.amount_micros),
                    "currency": payout.currency.lower(),
                    "destination": destination,
                    "transfer_group": f"payout-{payout.pk}",
                    "metadata": {"payout_id": str(payout.pk)},
                },
                options={"idempotency_key": f"payout:{payout.pk}:{key}"},
            )
        except stripe.StripeError as exc:
            reason = getattr(exc, "user_message", None) or str(exc) or exc.__class__.__name__
            return PayoutResult(status=PayoutStatus.FAILED, failure_reason=f"Stripe: {reason}"[:300])
        return PayoutResult(status=PayoutStatus.PAID, ref=transfer.id)
