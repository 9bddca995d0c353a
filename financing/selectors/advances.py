"""Advance reads: what each party may see of applications and advances, and the projected payoff."""

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.utils import timezone

from financing.models import OPEN_ADVANCE_STATUSES, Advance, AdvanceApplication
from financing.selectors.lenders import advances_offered_to_lender


def application_list(*, provider_user: User) -> QuerySet[AdvanceApplication]:
    return AdvanceApplication.objects.filter(provider=provider_user).select_related("gpu_model", "node")


def application_get(*, provider_user: User, application_id: int) -> AdvanceApplication | None:
    return application_list(provider_user=provider_user).filter(pk=application_id).first()


def advance_list_for_provider(*, provider_user: User) -> QuerySet[Advance]:
    return Advance.objects.filter(provider=provider_user).select_related("gpu_model", "application")


def advance_visible_to(*, user: User, advance_id: int) -> Advance | None:
    """The advance if `user` may see it: staff, its provider, a funder, or a lender it is offered to."""
    qs = Advance.objects.select_related("gpu_model", "application", "provider")
    if user.is_staff:
        return qs.filter(pk=advance_id).first()
    adv = qs.filter(pk=advance_id).filter(Q(provider=user) | Q(fundings__lender=user)).first()
    if adv is not None:
        return adv
    if hasattr(user, "lender"):
        return advances_offered_to_lender(lender_user=user).filter(pk=advance_id).first()
    return None


def advance_projection(*, advance: Advance, now: datetime | None = None) -> datetime | None:
    """Projected payoff date: at the pace repaid so far (after 30 days of history), else the offer's expectation."""
    if advance.disbursed_at is None or advance.status not in OPEN_ADVANCE_STATUSES:
        return advance.closed_at
    now = now or timezone.now()
    elapsed = (now - advance.disbursed_at).total_seconds()
    if elapsed >= 30 * 86_400 and advance.repaid_micros > 0:
        seconds_left = advance.remaining_micros * elapsed / advance.repaid_micros
        return now + timedelta(seconds=seconds_left)
    return advance.disbursed_at + timedelta(days=float(advance.expected_payoff_months) * 30)


def advances_all(*, status: str | None = None) -> QuerySet[Advance]:
    qs = Advance.objects.select_related("gpu_model", "provider", "application").order_by("-approved_at", "-pk")
    return qs.filter(status=status) if status else qs


def applications_pending() -> QuerySet[AdvanceApplication]:
    return (
        AdvanceApplication.objects.filter(status="offered")
        .select_related("gpu_model", "provider")
        .order_by("created_at", "pk")
    )
