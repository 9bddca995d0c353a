"""Lender repayments paid out through the gateway, on a schedule.

What a lender received (its lender_receivable balance: withheld repayments, payoffs, recalls) is paid out to it:
  * schedule (`lender_payouts_run`, hourly beat): on the weekly payout day (Monday, UTC) every lender whose
    receivable holds at least LENDER_PAYOUT_MINIMUM_MICROS; any day, a lender holding LENDER_PAYOUT_THRESHOLD_MICROS
    or more. With Stripe, only lenders whose connected account is ready. One payout per lender and day (a unique
    row), so an hourly run or a retried task never pays twice.
  * `lender_payout_create`: one ledger transaction `lender-payout:<lender>:<day>` moving whole cents from the
    receivable to gateway clearing, in the same database transaction as the LenderPayout row.
  * `lender_payout_send`: the gateway sends it — Stripe: a Connect transfer with the idempotency key
    `lender-payout:<payout id>` (a retry returns the same transfer); local: paid at once. A refusal, or a later
    `transfer.reversed` webhook, returns the money to the receivable (`lender-payout-reversal:<id>`), visibly FAILED.
A lender that prefers to fund more reinvests its receipts before the payout day (services/lenders.py).
"""

import logging
from datetime import date, datetime

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.gateways import get_gateway
from billing.models import Account, AccountKind
from billing.services.ledger import account_get, ledger_transfer
from common.errors import NotFound, PermissionDenied
from financing.models import LenderPayout, LenderPayoutStatus, LenderPreference

logger = logging.getLogger(__name__)

CENT = 10_000
LENDER_PAYOUT_MINIMUM_MICROS = 1_000_000  # $1
LENDER_PAYOUT_THRESHOLD_MICROS = 1_000_000_000  # $1,000: paid without waiting for the weekly day
PAYOUT_WEEKDAY = 0  # Monday


def lender_payout_create(*, lender_user: User, period: date) -> LenderPayout | None:
    """Reserve the lender's whole-cent receivable for a payout on `period`; None if nothing or already made."""
    with transaction.atomic():
        receivable = account_get(kind=AccountKind.LENDER_RECEIVABLE, user=lender_user)
        balance = Account.objects.select_for_update().values_list("balance", flat=True).get(pk=receivable.pk)
        amount = balance - balance % CENT
        if amount < LENDER_PAYOUT_MINIMUM_MICROS:
            return None
        try:
            with transaction.atomic():
                payout = LenderPayout.objects.create(
                    lender=lender_user, period=period, amount_micros=amount, gateway=get_gateway().name
                )
        except IntegrityError:
            return None  # today's payout exists: a repeated run pays nothing more
        payout.ledger_transaction = ledger_transfer(
            key=f"lender-payout:{lender_user.pk}:{period.isoformat()}",
            kind="lender_payout",
            legs=[(receivable, -amount), (account_get(kind=AccountKind.GATEWAY_CLEARING), amount)],
            memo=f"Lender payout {payout.pk}",
            metadata={"lender_payout_id": payout.pk},
        )
        payout.save(update_fields=["ledger_transaction"])
        return payout


def _return_to_receivable(payout: LenderPayout, reason: str) -> LenderPayout:
    payout.reversal_transaction = ledger_transfer(
        key=f"lender-payout-reversal:{payout.pk}",
        kind="lender_payout_reversal",
        legs=[
            (account_get(kind=AccountKind.GATEWAY_CLEARING), -payout.amount_micros),
            (account_get(kind=AccountKind.LENDER_RECEIVABLE, user=payout.lender), payout.amount_micros),
        ],
        memo=f"Lender payout {payout.pk} returned: {reason}"[:300],
        metadata={"lender_payout_id": payout.pk},
    )
    payout.status, payout.failure_reason = LenderPayoutStatus.FAILED, reason[:300] or "failed"
    payout.save(update_fields=["status", "failure_reason", "reversal_transaction"])
    return payout


def lender_payout_send(*, payout_id: int) -> LenderPayout:
    """Send a pending payout through the gateway; safe to retry (a sent payout is returned unchanged)."""
    with transaction.atomic():
        payout = LenderPayout.objects.select_for_update().filter(pk=payout_id).first()
        if payout is None:
            raise NotFound(f"No lender payout {payout_id}.")
        if payout.status != LenderPayoutStatus.PENDING:
            return payout
        send = getattr(get_gateway(), "send_transfer", None)
        if send is None:
            payout.status, payout.gateway_ref = LenderPayoutStatus.PAID, f"local-lender-payout-{payout.pk}"
        else:
            pref = LenderPreference.objects.filter(lender=payout.lender).first()
            result = send(
                amount_micros=payout.amount_micros,
                destination=pref.stripe_account_id if pref else "",
                key=f"lender-payout:{payout.pk}",
                metadata={"lender_payout_id": str(payout.pk)},
            )
            if result.status == "failed":
                return _return_to_receivable(payout, result.failure_reason)
            payout.status, payout.gateway_ref = LenderPayoutStatus.PAID, result.ref
        payout.save(update_fields=["status", "gateway_ref"])
        return payout


def lender_payout_reverse(*, gateway_ref: str, reason: str) -> LenderPayout | None:
    """The gateway reversed a payout's transfer: the money goes back to the lender's receivable, once."""
    with transaction.atomic():
        payout = LenderPayout.objects.select_for_update().filter(gateway_ref=gateway_ref).first()
        if payout is None or payout.status == LenderPayoutStatus.FAILED:
            return payout
        return _return_to_receivable(payout, reason)


def lender_payouts_run(*, now: datetime | None = None) -> list[LenderPayout]:
    """Pay every eligible lender (see the module docstring); returns the payouts made."""
    now = now or timezone.now()
    minimum = LENDER_PAYOUT_MINIMUM_MICROS if now.weekday() == PAYOUT_WEEKDAY else LENDER_PAYOUT_THRESHOLD_MICROS
    owners = Account.objects.filter(
        kind=AccountKind.LENDER_RECEIVABLE, owner__isnull=False, balance__gte=minimum
    ).values_list("owner_id", flat=True)
    users = User.objects.filter(pk__in=list(owners), lender__isnull=False).order_by("pk")
    if get_gateway().name != "local":
        users = users.filter(lender_preference__payout_account_ready=True).exclude(
            lender_preference__stripe_account_id=""
        )
    made = []
    for user in users:
        payout = lender_payout_create(lender_user=user, period=now.date())
        if payout is not None:
            made.append(lender_payout_send(payout_id=payout.pk))
    return made


def lender_payout_onboard(*, lender_user: User) -> str:
    """Where the lender sets up payouts: a Stripe Connect onboarding link (account created once); with the local
    gateway nothing is needed and the lender is marked ready."""
    if not hasattr(lender_user, "lender"):
        raise PermissionDenied("Only lender accounts receive lender payouts.")
    pref, _ = LenderPreference.objects.get_or_create(lender=lender_user)
    onboard = getattr(get_gateway(), "connect_onboarding", None)
    if onboard is None:
        LenderPreference.objects.filter(pk=pref.pk).update(payout_account_ready=True)
        return "/lender/"
    link = onboard(
        provider_pk=lender_user.pk,
        email=lender_user.email,
        country="US",
        account_id=pref.stripe_account_id,
        role="lender",
        return_path="/lender/",
    )
    if link.account_id != pref.stripe_account_id:
        LenderPreference.objects.filter(pk=pref.pk).update(stripe_account_id=link.account_id)
    return str(link.url)
