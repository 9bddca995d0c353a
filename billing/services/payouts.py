"""Provider payouts: provider payable → gateway, with statuses; a failure returns the money, visibly.

A payout is created in one database transaction that moves whole cents from the provider's payable
into gateway clearing (key `payout:<id>`), so the same money can never be paid twice; then the
gateway is asked to send it (Stripe: a Connect transfer with an idempotency key derived from that
ledger transaction; local: settled at once). When the gateway refuses, or Stripe later reverses the
transfer, the amount goes back from clearing to the payable (key `payout-reversal:<id>:<amount>`) and the
payout shows FAILED with the reason.

Schedule (`payout_run`, Celery beat hourly): every provider whose payable is at least
PAYOUT_THRESHOLD_MICROS is paid at once; on the weekly payout day (Monday, UTC) everyone with at least
PAYOUT_MINIMUM_MICROS is paid. With Stripe, only providers whose Connect account is ready are paid.
"""

import logging
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.gateways import get_gateway
from billing.models import Account, AccountKind, Payout, PayoutStatus
from billing.services.ledger import account_get, ledger_transfer
from common.errors import Conflict, NotFound, ValidationFailed
from common.money import format_usd
from notify.models import EventKind
from notify.services.events import notify_event

logger = logging.getLogger(__name__)

CENT = 10_000
PAYOUT_MINIMUM_MICROS = 1_000_000  # $1: below this a weekly payout waits
PAYOUT_THRESHOLD_MICROS = 100_000_000  # $100: at or above this, paid without waiting for the weekly day
PAYOUT_WEEKDAY = 0  # Monday


def _notify(payout: Payout) -> None:
    """Tell the provider (webhook/e-mail, after commit) once per payout status (key: payout id and status)."""
    notify_event(
        user=payout.provider,
        kind=EventKind.PAYOUT,
        key=f"payout:{payout.pk}:{payout.status}",
        subject=f"Payout {payout.pk} of {format_usd(micros=payout.amount_micros)}: {payout.status}",
        payload={
            "payout_id": payout.pk,
            "amount_micros": payout.amount_micros,
            "status": str(payout.status),
            "failure_reason": payout.failure_reason,
        },
    )


def _send(payout: Payout) -> tuple[PayoutStatus, str, str]:
    gateway = get_gateway()
    send = getattr(gateway, "send_payout", None)
    if send is None:  # the local gateway: money is "out" at once
        return PayoutStatus.PAID, f"local-payout-{payout.pk}", ""
    from marketplace.models import Provider

    destination = (
        Provider.objects.filter(user_id=payout.provider_id).values_list("stripe_account_id", flat=True).first()
    )
    result = send(payout, destination=destination or "")
    return result.status, result.ref, result.failure_reason


def payout_create(*, provider_user: User, amount_micros: int | None = None) -> Payout:
    """Reserve a payout of `amount_micros` (default: the whole payable, floored to cents) from the payable."""
    with transaction.atomic():
        payable = account_get(kind=AccountKind.PROVIDER_PAYABLE, user=provider_user)
        balance = Account.objects.select_for_update().values_list("balance", flat=True).get(pk=payable.pk)
        amount = balance - balance % CENT if amount_micros is None else amount_micros
        if amount <= 0 or amount % CENT:
            raise ValidationFailed("a payout is a positive whole number of cents")
        if amount > balance:
            raise Conflict(
                f"payable balance is {format_usd(micros=balance)}; cannot pay out {format_usd(micros=amount)}"
            )
        payout = Payout.objects.create(provider=provider_user, amount_micros=amount, gateway=get_gateway().name)
        clearing = account_get(kind=AccountKind.GATEWAY_CLEARING)
        payout.ledger_transaction = ledger_transfer(
            key=f"payout:{payout.pk}",
            kind="payout",
            legs=[(payable, -amount), (clearing, amount)],
            memo=f"Payout {payout.pk} to provider",
            metadata={"payout_id": payout.pk},
        )
        payout.save(update_fields=["ledger_transaction"])
        _notify(payout)
        return payout


def payout_send(*, payout_id: int) -> Payout:
    """Ask the gateway to send a pending payout; safe to retry (the gateway call is idempotent)."""
    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update(of=("self",))
            .select_related("ledger_transaction")
            .filter(pk=payout_id)
            .first()
        )
        if payout is None:
            raise NotFound(f"no payout {payout_id}")
        if payout.status != PayoutStatus.PENDING:
            return payout
        status, ref, reason = _send(payout)
        if status == PayoutStatus.FAILED:
            return _return_to_payable(payout=payout, amount_micros=payout.amount_micros, reason=reason)
        payout.status, payout.gateway_ref = status, ref
        payout.save(update_fields=["status", "gateway_ref", "updated_at"])
        _notify(payout)
        return payout


def _return_to_payable(*, payout: Payout, amount_micros: int, reason: str) -> Payout:
    payable = account_get(kind=AccountKind.PROVIDER_PAYABLE, user=payout.provider)
    clearing = account_get(kind=AccountKind.GATEWAY_CLEARING)
    payout.reversal_transaction = ledger_transfer(
        key=f"payout-reversal:{payout.pk}:{amount_micros}",
        kind="payout_reversal",
        legs=[(clearing, -amount_micros), (payable, amount_micros)],
        memo=f"Payout {payout.pk} returned: {reason}"[:300],
        metadata={"payout_id": payout.pk},
    )
    payout.status = PayoutStatus.FAILED
    payout.failure_reason = reason[:300] or "failed"
    payout.save(update_fields=["status", "failure_reason", "reversal_transaction", "updated_at"])
    _notify(payout)
    return payout


def payout_fail(*, payout_id: int, reason: str, amount_micros: int | None = None) -> Payout:
    """The gateway reported the payout failed or reversed: return the money to the payable, once."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().filter(pk=payout_id).first()
        if payout is None:
            raise NotFound(f"no payout {payout_id}")
        if payout.status == PayoutStatus.FAILED or payout.ledger_transaction_id is None:
            return payout
        amount = payout.amount_micros if amount_micros is None else min(amount_micros, payout.amount_micros)
        return _return_to_payable(payout=payout, amount_micros=amount, reason=reason)


def payout_run(*, now: datetime | None = None) -> list[Payout]:
    """Pay every eligible provider (see the module docstring); returns the payouts made."""
    now = now or timezone.now()
    weekly = now.weekday() == PAYOUT_WEEKDAY
    minimum = PAYOUT_MINIMUM_MICROS if weekly else PAYOUT_THRESHOLD_MICROS
    candidates = Account.objects.filter(
        kind=AccountKind.PROVIDER_PAYABLE, owner__isnull=False, balance__gte=minimum
    ).values_list("owner_id", flat=True)
    users = User.objects.filter(pk__in=list(candidates)).order_by("pk")
    if get_gateway().name == "stripe":
        users = users.filter(provider__payout_account_ready=True).exclude(provider__stripe_account_id="")
    # The run is hourly: pay each provider at most once a day.
    users = users.exclude(payouts__created_at__date=now.date())
    made = []
    for user in users:
        try:
            payout = payout_create(provider_user=user)
        except (ValidationFailed, Conflict) as exc:
            logger.info("payout for user %s skipped: %s", user.pk, exc)
            continue
        made.append(payout_send(payout_id=payout.pk))
    return made


def provider_payout_onboard(*, provider_user: User) -> str:
    """The URL where the provider sets up payouts: a Stripe Connect onboarding link (the account is created
    once and remembered); with the local gateway, payouts need no setup and the account is marked ready."""
    from marketplace.models import Provider

    provider = Provider.objects.filter(user=provider_user).first()
    if provider is None:
        raise NotFound("only providers receive payouts")
    gateway = get_gateway()
    onboard = getattr(gateway, "connect_onboarding", None)
    if onboard is None:
        Provider.objects.filter(pk=provider.pk).update(payout_account_ready=True)
        return "/provider/earnings/"
    link = onboard(
        provider_pk=provider.pk,
        email=provider_user.email,
        country=provider.country,
        account_id=provider.stripe_account_id,
    )
    if link.account_id != provider.stripe_account_id:
        Provider.objects.filter(pk=provider.pk).update(stripe_account_id=link.account_id)
    return str(link.url)
