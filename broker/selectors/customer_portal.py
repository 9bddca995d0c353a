"""Reads for the customer portal: the low-balance warning, the user's API tokens."""

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import QuerySet

from billing.selectors.wallet import wallet_balance
from broker.models import Job
from broker.selectors.offers import offer_search
from common.models import ApiToken
from common.money import to_micros
from marketplace.models import Customer

LOW_BALANCE_FLOOR_MICROS = 10_000_000  # $10


@dataclass(frozen=True)
class LowBalance:
    available_micros: int
    threshold_micros: int
    reason: str


def typical_hour_micros(*, customer: Customer) -> int | None:
    """What one hour of the customer's latest job costs: its lease price, else the cheapest offer that fits it."""
    job = Job.objects.filter(customer=customer).order_by("-created_at", "-id").first()
    if job is None:
        return None
    lease = job.leases.order_by("-created_at", "-id").first()
    if lease is not None:
        return lease.price_micros * lease.gpu_count
    offers = offer_search(q=f"num_gpus>={job.gpu_count}", order="price", limit=1)
    if not offers:
        return None
    return to_micros(amount=offers[0].price) * job.gpu_count


def wallet_low_balance(*, customer: Customer) -> LowBalance | None:
    """A warning when available money is under $10 or under one hour of the customer's typical job."""
    available = wallet_balance(user=customer.user).available_micros
    hour = typical_hour_micros(customer=customer)
    if hour is not None and hour > LOW_BALANCE_FLOOR_MICROS:
        threshold, reason = hour, "less than one hour of your latest job"
    else:
        threshold, reason = LOW_BALANCE_FLOOR_MICROS, "under $10"
    if available < threshold:
        return LowBalance(available_micros=available, threshold_micros=threshold, reason=reason)
    return None


def api_tokens_active(*, user: User) -> QuerySet[ApiToken]:
    """The user's tokens that are not revoked, newest first."""
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "-id")


def api_token_own(*, user: User, token_id: int) -> ApiToken | None:
    """The user's own token `token_id` (None for another user's)."""
    return ApiToken.objects.filter(pk=token_id, user=user).first()
