"""Stripe webhooks: verified with the library, de-duplicated by event id, applied to the ledger once.

Handled events:

* `checkout.session.completed` (paid) / `checkout.session.async_payment_succeeded` / `payment_intent.succeeded`:
  the top-up (metadata `topup_id`) is completed — the wallet credited once (`topup_complete`).
* `checkout.session.async_payment_failed` / `payment_intent.payment_failed`: the top-up is marked failed.
* `charge.refunded`: the refunded part of a top-up leaves the wallet (to gateway clearing); what the wallet
  no longer holds is absorbed by platform revenue, so the ledger always balances and shows the loss.
* `charge.dispute.created`: the disputed amount is taken the same way; `charge.dispute.closed` with
  status `won` gives it back.
* `account.updated`: the provider's `payout_account_ready` follows the connected account's state.
* `transfer.reversed`: the payout's reversed amount goes back to the provider's payable.

Apps above billing handle their own objects through a registered handler (`register_webhook_handler`, e.g.
financing: lender capital Checkout Sessions, lender payout transfers): each is offered every verified event first
and returns what it did, or None to pass. Any other type is recorded and ignored. A redelivered event id changes
nothing.
"""

import json
import logging
from collections.abc import Callable
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum

from billing.models import AccountKind, Entry, Payout, StripeEvent, TopUp, TopUpStatus
from billing.services.ledger import account_get, ledger_transfer
from billing.services.payouts import payout_fail
from billing.services.topups import topup_complete, topup_fail
from common.errors import ValidationFailed

logger = logging.getLogger(__name__)

TOLERANCE_S = 300
CENT = 10_000

WebhookHandler = Callable[[str, Any], str | None]
_handlers: dict[str, WebhookHandler] = {}


def register_webhook_handler(*, name: str, handler: WebhookHandler) -> None:
    """Offer every verified event `(type, data.object)` to `handler` before billing's own handling; a handler
    returns the outcome when the event was its own, else None. Runs inside the event's transaction."""
    _handlers[name] = handler


def stripe_event_verify(*, payload: bytes, signature: str) -> Any:
    """The verified event, or ValidationFailed (400) for a missing, forged or stale signature or bad JSON."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise ValidationFailed("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET is empty).")
    try:
        return stripe.Webhook.construct_event(payload, signature, secret, tolerance=TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        raise ValidationFailed("Invalid or stale Stripe-Signature.", code="bad_signature") from exc
    except ValueError as exc:
        raise ValidationFailed("Webhook payload is not valid JSON.") from exc


def stripe_webhook_handle(*, payload: bytes, signature: str) -> str:
    """Verify and apply one webhook delivery; returns what was done (also stored with the event)."""
    stripe_event_verify(payload=payload, signature=signature)
    event = json.loads(payload)  # verified: read it as plain JSON
    data = event["data"]["object"]
    try:
        with transaction.atomic():
            record = StripeEvent.objects.create(
                event_id=event["id"], type=event["type"], livemode=bool(event.get("livemode"))
            )
            outcome = _dispatch(event["type"], data)
            record.outcome = outcome[:300]
            record.save(update_fields=["outcome"])
            return outcome
    except IntegrityError:
        if StripeEvent.objects.filter(event_id=event["id"]).exists():
            return "duplicate event: ignored"
        raise


def _topup_for(obj: Any) -> TopUp | None:
    metadata = obj.get("metadata") or {}
    topup_id = metadata.get("topup_id")
    if topup_id and str(topup_id).isdigit():
        return TopUp.objects.filter(pk=int(topup_id)).first()
    refs = [r for r in (obj.get("payment_intent"), obj.get("id")) if isinstance(r, str) and r]
    return TopUp.objects.filter(gateway_ref__in=refs).first() if refs else None


def _taken_back(topup: TopUp, kind: str) -> int:
    total = Entry.objects.filter(
        transaction__kind=kind, transaction__metadata__topup_id=topup.pk, account__kind=AccountKind.GATEWAY_CLEARING
    ).aggregate(s=Sum("amount"))["s"]
    return int(total or 0)


def _take_back(*, topup: TopUp, amount_micros: int, key: str, kind: str, memo: str) -> str:
    """Money returned to the payer: wallet → clearing, the part the wallet lacks from platform revenue."""
    if amount_micros <= 0:
        return "nothing to take back"
    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=topup.user)
    wallet.refresh_from_db(fields=["balance"])
    from_wallet = min(amount_micros, max(wallet.balance, 0))
    absorbed = amount_micros - from_wallet
    legs = [
        (account_get(kind=AccountKind.GATEWAY_CLEARING), amount_micros),
        (wallet, -from_wallet),
        (account_get(kind=AccountKind.PLATFORM_REVENUE), -absorbed),
    ]
    ledger_transfer(
        key=key,
        kind=kind,
        legs=[(a, amt) for a, amt in legs if amt],
        memo=memo,
        metadata={"topup_id": topup.pk, "from_wallet": from_wallet, "absorbed": absorbed},
    )
    return f"{kind}: {amount_micros} micros ({absorbed} absorbed by platform)"


def _on_checkout_completed(obj: Any) -> str:
    if obj.get("payment_status") not in ("paid", "no_payment_required"):
        return "checkout completed but not paid yet"
    topup = _topup_for(obj)
    if topup is None:
        return "unknown top-up: ignored"
    topup_complete(topup_id=topup.pk, gateway_ref=obj.get("payment_intent") or obj["id"])
    return f"top-up {topup.pk} completed"


def _on_payment_succeeded(obj: Any) -> str:
    topup = _topup_for(obj)
    if topup is None:
        return "unknown top-up: ignored"
    topup_complete(topup_id=topup.pk, gateway_ref=obj["id"])
    return f"top-up {topup.pk} completed"


def _on_payment_failed(obj: Any) -> str:
    topup = _topup_for(obj)
    if topup is None:
        return "unknown top-up: ignored"
    topup_fail(topup_id=topup.pk, gateway_ref=obj.get("payment_intent") or obj["id"])
    return f"top-up {topup.pk} failed"


def _on_charge_refunded(obj: Any) -> str:
    topup = _topup_for(obj)
    if topup is None or topup.status != TopUpStatus.SUCCEEDED:
        return "refund of an unknown or unpaid top-up: ignored"
    refunded = int(obj.get("amount_refunded") or 0) * CENT
    due = min(refunded, topup.amount_micros) - _taken_back(topup, "topup_refund")
    return _take_back(
        topup=topup,
        amount_micros=due,
        key=f"refund:{topup.pk}:{refunded}",
        kind="topup_refund",
        memo=f"Refund of top-up {topup.pk}",
    )


def _on_dispute_created(obj: Any) -> str:
    topup = _topup_for({"payment_intent": obj.get("payment_intent"), "id": obj.get("charge")})
    if topup is None or topup.status != TopUpStatus.SUCCEEDED:
        return "dispute of an unknown or unpaid top-up: ignored"
    amount = min(int(obj.get("amount") or 0) * CENT, topup.amount_micros - _taken_back(topup, "topup_dispute"))
    return _take_back(
        topup=topup,
        amount_micros=amount,
        key=f"dispute:{obj['id']}",
        kind="topup_dispute",
        memo=f"Dispute {obj['id']} on top-up {topup.pk}",
    )


def _on_dispute_closed(obj: Any) -> str:
    if obj.get("status") != "won":
        return f"dispute closed ({obj.get('status')}): funds stay withdrawn"
    txn_entries = Entry.objects.filter(
        transaction__idempotency_key=f"dispute:{obj['id']}", account__kind=AccountKind.GATEWAY_CLEARING
    ).select_related("transaction")
    entry = txn_entries.first()
    if entry is None:
        return "won dispute with nothing withdrawn: ignored"
    topup = TopUp.objects.get(pk=entry.transaction.metadata["topup_id"])
    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=topup.user)
    ledger_transfer(
        key=f"dispute-won:{obj['id']}",
        kind="topup_dispute",
        legs=[(account_get(kind=AccountKind.GATEWAY_CLEARING), -entry.amount), (wallet, entry.amount)],
        memo=f"Dispute {obj['id']} won: funds returned",
        metadata={"topup_id": topup.pk},
    )
    return f"dispute won: {entry.amount} micros back to the wallet"


def _on_account_updated(obj: Any) -> str:
    from marketplace.models import Provider

    ready = bool(obj.get("payouts_enabled")) and bool(obj.get("details_submitted"))
    updated = Provider.objects.filter(stripe_account_id=obj["id"]).update(payout_account_ready=ready)
    return f"connected account {obj['id']}: payout_account_ready={ready} ({updated} provider)"


def _on_transfer_reversed(obj: Any) -> str:
    payout = Payout.objects.filter(gateway_ref=obj["id"]).first()
    if payout is None:
        return "reversal of an unknown transfer: ignored"
    reversed_micros = int(obj.get("amount_reversed") or 0) * CENT or payout.amount_micros
    payout_fail(payout_id=payout.pk, reason="transfer reversed by Stripe", amount_micros=reversed_micros)
    return f"payout {payout.pk} reversed"


# Billing's own events (after the registered handlers had their say): event type -> handler of its object.
_BILLING_EVENTS: dict[str, Callable[[Any], str]] = {
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.async_payment_succeeded": _on_checkout_completed,
    "payment_intent.succeeded": _on_payment_succeeded,
    "checkout.session.async_payment_failed": _on_payment_failed,
    "payment_intent.payment_failed": _on_payment_failed,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute_created,
    "charge.dispute.closed": _on_dispute_closed,
    "account.updated": _on_account_updated,
    "transfer.reversed": _on_transfer_reversed,
}


def _dispatch(kind: str, obj: Any) -> str:
    for handler in list(_handlers.values()):
        outcome = handler(kind, obj)
        if outcome is not None:
            return outcome
    billing_handler = _BILLING_EVENTS.get(kind)
    return billing_handler(obj) if billing_handler is not None else f"{kind}: not handled"
