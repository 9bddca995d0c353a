"""Financing's part of the verified Stripe webhooks (billing/services/stripe_webhooks.py offers each event here
first; returning None leaves it to billing):

* `checkout.session.completed` / `checkout.session.async_payment_succeeded` of a capital Checkout Session
  (metadata `capital_commitment_id`), paid: the lender's capital is credited once (`lender_capital_credit`);
  `checkout.session.async_payment_failed` / `checkout.session.expired`: the commitment fails;
* `transfer.reversed` of a lender payout's transfer: the money returns to the lender's receivable, once;
* `charge.succeeded` of a top-up: the card's fingerprint is remembered for the related-party rule (and the event
  is left to billing).
"""

from typing import Any

from billing.models import TopUp
from financing.models import PartySignalKind
from financing.services.lender_payouts import lender_payout_reverse
from financing.services.lenders import lender_capital_credit, lender_capital_fail
from financing.services.parties import party_signal_record


def _capital_id(obj: Any) -> int | None:
    value = (obj.get("metadata") or {}).get("capital_commitment_id")
    return int(value) if value and str(value).isdigit() else None


def _card_fingerprint(obj: Any) -> str:
    details = obj.get("payment_method_details") or {}
    return str((details.get("card") or {}).get("fingerprint") or "")


def financing_webhook_handle(kind: str, obj: Any) -> str | None:
    capital_id = _capital_id(obj) if kind.startswith("checkout.session.") else None
    if capital_id is not None:
        if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            if obj.get("payment_status") not in ("paid", "no_payment_required"):
                return "capital checkout completed but not paid yet"
            lender_capital_credit(commitment_id=capital_id, ref=str(obj.get("payment_intent") or obj["id"]))
            return f"capital commitment {capital_id} credited"
        if kind in ("checkout.session.async_payment_failed", "checkout.session.expired"):
            lender_capital_fail(commitment_id=capital_id)
            return f"capital commitment {capital_id} failed"
        return None
    if kind == "transfer.reversed":
        payout = lender_payout_reverse(gateway_ref=str(obj.get("id") or ""), reason="transfer reversed by Stripe")
        return None if payout is None else f"lender payout {payout.pk} reversed"
    if kind == "charge.succeeded" and _card_fingerprint(obj):
        refs = [r for r in (obj.get("payment_intent"), obj.get("id")) if isinstance(r, str) and r]
        topup = TopUp.objects.filter(gateway_ref__in=refs).select_related("user").first() if refs else None
        if topup is not None:
            party_signal_record(user=topup.user, kind=PartySignalKind.PAYMENT_METHOD, value=_card_fingerprint(obj))
    return None
