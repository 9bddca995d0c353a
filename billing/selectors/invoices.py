"""Reads for invoices and provider earnings statements."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import QuerySet, Sum
from django.utils import timezone

from billing.models import AccountKind, Entry, Invoice, LeaseAccount, Payout, PayoutStatus, Settlement, SlaCredit
from billing.services.ledger import account_get
from billing.services.payouts import CENT, PAYOUT_MINIMUM_MICROS, PAYOUT_THRESHOLD_MICROS, PAYOUT_WEEKDAY
from common.errors import NotFound


def invoice_list(*, customer_user: User) -> QuerySet[Invoice]:
    return Invoice.objects.filter(customer=customer_user).order_by("-period_end", "-id")


def invoice_get(*, customer_user: User, invoice_id: int) -> Invoice:
    """The customer's own invoice; another customer's (or a missing one) is NotFound."""
    invoice = Invoice.objects.filter(customer=customer_user, pk=invoice_id).prefetch_related("lines").first()
    if invoice is None:
        raise NotFound(f"No invoice {invoice_id}.")
    return invoice


@dataclass(frozen=True)
class ProviderStatement:
    period_start: datetime
    period_end: datetime
    gross_micros: int  # what customers were charged for this provider's leases
    fee_micros: int
    reserve_micros: int
    earnings_micros: int  # provider share (gross - fee - reserve)
    withheld_micros: int  # of the share, repaid to lenders (financing)
    sla_penalties_micros: int
    paid_out_micros: int
    balance_micros: int  # payable now
    upcoming_payout_micros: int
    upcoming_payout_on: datetime | None
    payouts: list[Payout]
    leases: list[LeaseAccount]


def provider_statement(*, provider_user: User, period_start: datetime, period_end: datetime) -> ProviderStatement:
    """The provider's earnings for a period, from the same settlements and ledger the invoices use."""
    settled = Settlement.objects.filter(
        lease_account__provider=provider_user, created_at__gte=period_start, created_at__lt=period_end
    ).aggregate(c=Sum("charged_micros"), f=Sum("fee_micros"), r=Sum("reserve_micros"), p=Sum("provider_micros"))
    payable = account_get(kind=AccountKind.PROVIDER_PAYABLE, user=provider_user)
    credited_payable = (
        Entry.objects.filter(
            account=payable,
            transaction__settlement__lease_account__provider=provider_user,
            transaction__settlement__created_at__gte=period_start,
            transaction__settlement__created_at__lt=period_end,
        ).aggregate(s=Sum("amount"))["s"]
        or 0
    )
    penalties = (
        SlaCredit.objects.filter(
            lease_account__provider=provider_user, created_at__gte=period_start, created_at__lt=period_end
        ).aggregate(s=Sum("penalty_micros"))["s"]
        or 0
    )
    payouts = list(Payout.objects.filter(provider=provider_user).order_by("-created_at", "-id")[:50])
    paid = (
        Payout.objects.filter(
            provider=provider_user,
            status__in=[PayoutStatus.PAID, PayoutStatus.IN_TRANSIT],
            created_at__gte=period_start,
            created_at__lt=period_end,
        ).aggregate(s=Sum("amount_micros"))["s"]
        or 0
    )
    balance = payable.balance
    now = timezone.now()
    upcoming = balance - balance % CENT
    if upcoming >= PAYOUT_THRESHOLD_MICROS:
        upcoming_on: datetime | None = now
    elif upcoming >= PAYOUT_MINIMUM_MICROS:
        days = (PAYOUT_WEEKDAY - now.weekday()) % 7
        upcoming_on = (now + timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        upcoming, upcoming_on = 0, None
    earnings = settled["p"] or 0
    return ProviderStatement(
        period_start=period_start,
        period_end=period_end,
        gross_micros=settled["c"] or 0,
        fee_micros=settled["f"] or 0,
        reserve_micros=settled["r"] or 0,
        earnings_micros=earnings,
        withheld_micros=earnings - credited_payable,
        sla_penalties_micros=penalties,
        paid_out_micros=paid,
        balance_micros=balance,
        upcoming_payout_micros=upcoming,
        upcoming_payout_on=upcoming_on,
        payouts=payouts,
        leases=list(
            LeaseAccount.objects.filter(provider=provider_user, opened_at__lt=period_end).order_by("-opened_at")[:50]
        ),
    )
