"""The earnings model: what a GPU earns its provider per month, and how long an advance takes to pay off.

One model, used by the fleet assessment's upgrade path (services/assessment.py), the financing application's
projection and underwriting (financing/services/underwriting.py), so the figures a provider is shown are the
figures it is offered::

    provider share fraction s   = 1 − platform fee rate − reserve rate   (what settlement credits the provider)
    monthly share of one GPU    = price per GPU-hour × 730 h × utilisation × s   (floored to the micro-dollar)
    expected payoff (months)    = (principal + fee) / (monthly share × withhold rate), one decimal, rounded up

Utilisation for projecting *new* GPUs is the market's observed utilisation of the model, clamped to
[25 %, 85 %] (25 % when nothing is observed): `projection_utilisation`. Earnings are before power and hosting.

Upgrade quotes. Marketplace imports no app above it, so the assessment asks for the financing terms of an
upgrade through a registered quoter: the financing app registers one (its underwriting run on the provider's
real inputs) from its AppConfig.ready(). The assessment shows the quote's monthly share per GPU and expected
payoff — the very numbers an application with the same inputs is offered — or the quote's reasons why there is
no offer. With no quoter registered the upgrade path shows earnings at the assessment's utilisation and no
payoff.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from fractions import Fraction

from django.conf import settings

from marketplace.models import GPUModel, Provider

HOURS_PER_MONTH = 730
UTILISATION_FLOOR = Fraction(1, 4)
UTILISATION_CAP = Fraction(85, 100)


def _rate(name: str) -> Fraction:
    value = Fraction(str(getattr(settings, name)))
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1)")
    return value


def provider_share_fraction() -> Fraction:
    """What settlement credits the provider of each charge: 1 − platform fee rate − reserve rate."""
    return 1 - _rate("RIGSHIFT_PLATFORM_FEE_RATE") - _rate("RIGSHIFT_RESERVE_RATE")


def projection_utilisation(*, observed: Fraction | None) -> Fraction:
    """The utilisation new GPUs are projected at: the observed market figure clamped to [25 %, 85 %]."""
    return min(max(observed if observed is not None else UTILISATION_FLOOR, UTILISATION_FLOOR), UTILISATION_CAP)


def gpu_monthly_share_micros(*, price_micros: int, utilisation: Fraction | Decimal, share_fraction: Fraction) -> int:
    """The provider's monthly share of one GPU at `price_micros` per GPU-hour (floored to the micro-dollar)."""
    util = Fraction(utilisation) if isinstance(utilisation, Decimal) else utilisation
    return int(price_micros * HOURS_PER_MONTH * util * share_fraction)


def payoff_months(*, due_micros: int, monthly_repayment_micros: int) -> Decimal | None:
    """Months to repay `due_micros` at `monthly_repayment_micros`, one decimal, rounded up (None: never)."""
    if monthly_repayment_micros <= 0:
        return None
    return (Decimal(due_micros) / Decimal(monthly_repayment_micros)).quantize(Decimal("0.1"), rounding=ROUND_UP)


@dataclass(frozen=True)
class UpgradeQuote:
    """What financing would offer for `count` GPUs of a model: the offer's figures, or the reasons for none."""

    count: int
    monthly_share_per_gpu_micros: int
    utilisation: Fraction
    offered: bool
    offered_count: int = 0
    principal_micros: int = 0
    fee_micros: int = 0
    withhold_bps: int = 0
    payoff_months: Decimal | None = None
    reasons: list[str] = field(default_factory=list)


Quoter = Callable[..., UpgradeQuote]
_quoters: dict[str, Quoter] = {}


def register_upgrade_quoter(*, name: str, quoter: Quoter) -> None:
    """Register the function that quotes upgrades (keyword arguments provider, gpu_model, count, unit_cost_micros)."""
    _quoters[name] = quoter


def upgrade_quote(*, provider: Provider, gpu_model: GPUModel, count: int, unit_cost_micros: int) -> UpgradeQuote | None:
    """The registered quoter's answer (the last registered wins), or None when no app quotes upgrades."""
    if not _quoters:
        return None
    quoter = list(_quoters.values())[-1]
    return quoter(provider=provider, gpu_model=gpu_model, count=count, unit_cost_micros=unit_cost_micros)
