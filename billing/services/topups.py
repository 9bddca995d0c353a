"""Wallet top-ups through the payment gateway; the wallet is credited once, on the gateway's word."""

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.gateways import get_gateway
from billing.models import TopUp, TopUpStatus
from billing.services.wallet import wallet_credit
from common.errors import NotFound, ValidationFailed
from common.money import MICROS, format_usd
from common.numbers import money_field_parse

MAX_TOPUP_MICROS = 100_000 * MICROS


def topup_amount_parse(*, amount: object) -> int:
    """A top-up amount in dollars ("50.00"): > 0, <= 100,000, at most 2 decimals → micros; else 400.

    The one money rule (`common.numbers.money_parse`): NaN, Infinity and overflowing exponents are refused."""
    micros = money_field_parse(amount, field="amount", places=2, max_micros=MAX_TOPUP_MICROS, positive=True)
    assert micros is not None
    return micros


def topup_complete(*, topup_id: int, gateway_ref: str) -> TopUp:
    """Mark the top-up paid and credit the wallet once (key `topup:<id>`); a repeat changes nothing.

    The local gateway calls this at once; Stripe's verified webhook calls it when the payment succeeds.
    """
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().filter(pk=topup_id).first()
        if topup is None:
            raise NotFound(f"No top-up {topup_id}.")
        if topup.status == TopUpStatus.SUCCEEDED:
            return topup
        txn = wallet_credit(
            user=topup.user,
            amount_micros=topup.amount_micros,
            key=f"topup:{topup.pk}",
            memo=f"Top-up {topup.pk} via {topup.gateway}",
        )
        topup.status = TopUpStatus.SUCCEEDED
        topup.gateway_ref = gateway_ref or topup.gateway_ref
        topup.ledger_transaction = txn
        topup.completed_at = timezone.now()
        topup.save(update_fields=["status", "gateway_ref", "ledger_transaction", "completed_at"])
        return topup


def topup_fail(*, topup_id: int, gateway_ref: str = "") -> TopUp:
    """Mark a pending top-up failed (the gateway said so); a settled one stays settled."""
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().filter(pk=topup_id).first()
        if topup is None:
            raise NotFound(f"No top-up {topup_id}.")
        if topup.status == TopUpStatus.PENDING:
            topup.status = TopUpStatus.FAILED
            topup.gateway_ref = gateway_ref or topup.gateway_ref
            topup.completed_at = timezone.now()
            topup.save(update_fields=["status", "gateway_ref", "completed_at"])
        return topup


def topup_create(*, user: User, amount_micros: int) -> TopUp:
    """Start a top-up of `amount_micros` through the configured gateway.

    The local gateway settles at once (the wallet is credited before this returns); Stripe returns a
    checkout URL and the wallet is credited only when its verified webhook calls `topup_complete`.
    """
    if not isinstance(amount_micros, int) or amount_micros <= 0 or amount_micros > MAX_TOPUP_MICROS:
        raise ValidationFailed(f"A top-up is more than $0 and at most {format_usd(micros=MAX_TOPUP_MICROS)}.")
    gateway = get_gateway()
    topup = TopUp.objects.create(user=user, amount_micros=amount_micros, gateway=gateway.name)
    result = gateway.create_topup(topup)
    if result.status == TopUpStatus.SUCCEEDED:
        return topup_complete(topup_id=topup.pk, gateway_ref=result.ref)
    topup.gateway_ref = result.ref
    topup.checkout_url = result.checkout_url
    update = ["gateway_ref", "checkout_url"]
    if result.status == TopUpStatus.FAILED:
        topup.status = TopUpStatus.FAILED
        topup.completed_at = timezone.now()
        update += ["status", "completed_at"]
    topup.save(update_fields=update)
    return topup
