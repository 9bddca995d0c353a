"""Underwriting: an upgrade advance offer (or decline reasons) from what only the broker knows.

Rules (version RULES_VERSION). All money in integer micro-dollars; the arithmetic is stored with the offer.

Inputs
  * history: the provider's metered share of settlements (its leases) over the trailing 90 days, split into the
    last 30 days and the 60 before. trailing monthly = trailing / 3. trend = (last 30 days) / (earlier 60 / 2).
  * nodes: the target node (when given) or all the provider's nodes: GPU-weighted reliability, verified or not.
  * market for the financed model: median listed on-demand price (catalog reference price with no listings) and
    utilisation over 30 days = rated GPU-ms of leases on that model / listed GPU-ms of that model.
  * reserved contracts on the provider's nodes: monthly payment and unpaid months (a receivable).

Projection of the provider's monthly share M (what the withhold rate applies to)
  * share fraction s = 1 - platform fee rate - reserve rate (what settlement credits the provider).
  * existing E = trailing monthly × min(trend, 1)   (a falling trend counts in full, a rising one is ignored).
  * new GPUs N = count × price × 730 h × clamp(utilisation, 25 %, 85 %) × s, only when the provider has earnings
    history (a provider without history is financed on contracted revenue only).
  * contracts C = Σ monthly payment × s over active reserved contracts with unpaid months.
  * M = E + N + C.

Declines (each one listed as a reason)
  D1 the model is not AI-grade (catalog tier "unsuitable").
  D2 no metered earnings in the trailing 90 days and no reserved contract to finance against.
  D3 the provider has a delinquent or defaulted advance.
  D4 GPU-weighted reliability of the nodes considered is below 80 %.
  D5 even one GPU at the highest withhold rate would take longer than 24 months to repay.
  D6 no price is known for the model (no listings and no reference price).

Offer
  * fee rate = 8 % + 2 % if no considered node is verified + 3 % if reliability < 95 % + 2 % if trend < 0.9
    − 2 % if reserved contracts cover at least half of what is due; never below 5 %. fee = principal × rate
    (floored).
  * withhold rate: 20 %; 30 % if 20 % would need more than 24 months.
  * if the full count still needs more than 24 months, the offer is for the largest count that does not.
  * expected payoff months = (principal + fee) / (M × withhold rate), one decimal, rounded up.
  * minimum progress per 60 days = half of the expected 60-day repayment = ceil(M × withhold rate).
"""

import math
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from fractions import Fraction
from typing import Any

from billing.services.settlement import fee_rate, reserve_rate
from common.money import format_usd
from financing.selectors.underwriting import UnderwritingInputs

RULES_VERSION = "2026-11.1"
HOURS_PER_MONTH = 730
MAX_PAYOFF_MONTHS = 24
MIN_RELIABILITY = 0.80
GOOD_RELIABILITY = 0.95
BASE_WITHHOLD_BPS = 2000
MAX_WITHHOLD_BPS = 3000
UTILISATION_FLOOR = Fraction(1, 4)
UTILISATION_CAP = Fraction(85, 100)
BASE_FEE_BPS = 800
MIN_FEE_BPS = 500
BPS = 10_000


@dataclass
class Decision:
    offered: bool
    count: int = 0
    principal_micros: int = 0
    fee_micros: int = 0
    withhold_bps: int = 0
    expected_payoff_months: Decimal | None = None
    min_progress_micros: int = 0
    reasons: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    arithmetic: list[str] = field(default_factory=list)


def _usd(micros: int) -> str:
    return format_usd(micros=micros)


def _payoff_months(due: int, monthly_repayment: int) -> Decimal | None:
    if monthly_repayment <= 0:
        return None
    return (Decimal(due) / Decimal(monthly_repayment)).quantize(Decimal("0.1"), rounding=ROUND_UP)


def underwrite(*, inputs: UnderwritingInputs, tier: str, count: int, unit_cost_micros: int) -> Decision:
    """Apply the rules of this module's docstring. Pure: no database access."""
    d = Decision(offered=False)
    h, m = inputs.history, inputs.market
    share_fraction = 1 - fee_rate() - reserve_rate()
    trend = (
        Fraction(h.recent_micros * 2, h.earlier_micros)
        if h.earlier_micros > 0
        else (Fraction(1) if h.recent_micros > 0 else Fraction(0))
    )
    gpus = sum(n.gpu_count for n in inputs.nodes)
    reliability = sum(n.reliability * n.gpu_count for n in inputs.nodes) / gpus if gpus else 0.0
    any_verified = any(n.verified for n in inputs.nodes)
    observed_util = Fraction(m.used_gpu_ms, m.capacity_gpu_ms) if m.capacity_gpu_ms else None
    util = min(
        max(observed_util if observed_util is not None else UTILISATION_FLOOR, UTILISATION_FLOOR), UTILISATION_CAP
    )
    has_history = h.trailing_micros > 0
    contract_monthly = sum(c.monthly_micros for c in inputs.contracts)
    contract_receivable = sum(c.monthly_micros * c.remaining_months for c in inputs.contracts)
    d.inputs = {
        "trailing_90d_earnings": _usd(h.trailing_micros),
        "last_30d_earnings": _usd(h.recent_micros),
        "earlier_60d_earnings": _usd(h.earlier_micros),
        "trend": f"{float(trend):.3f}",
        "nodes_considered": [n.node_id for n in inputs.nodes],
        "reliability": f"{reliability:.3f}",
        "verified_node": any_verified,
        "market_price_per_gpu_hour": _usd(m.price_micros),
        "market_price_source": m.price_source,
        "market_listings": m.listings,
        "market_utilisation_30d": None if observed_util is None else f"{float(observed_util):.3f}",
        "utilisation_used": f"{float(util):.3f}",
        "reserved_contracts": [c.contract_id for c in inputs.contracts],
        "reserved_monthly": _usd(contract_monthly),
        "reserved_receivable": _usd(contract_receivable),
        "troubled_advances": inputs.troubled_advances,
        "unit_cost": _usd(unit_cost_micros),
        "requested_count": count,
        "provider_share_fraction": f"{float(share_fraction):.4f}",
        "rules_version": RULES_VERSION,
    }
    a = d.arithmetic
    if tier == "unsuitable":
        d.reasons.append("D1: the GPU model is not AI-grade (catalog tier 'unsuitable'); finance an AI-grade model.")
    if not has_history and not inputs.contracts:
        d.reasons.append(
            "D2: no metered earnings in the last 90 days and no reserved contract on your nodes to finance against."
        )
    if inputs.troubled_advances:
        d.reasons.append("D3: you have a delinquent or defaulted advance.")
    if inputs.nodes and reliability < MIN_RELIABILITY:
        d.reasons.append(f"D4: node reliability {reliability:.1%} is below the {MIN_RELIABILITY:.0%} minimum.")
    if m.price_micros <= 0:
        d.reasons.append("D6: no market or reference price is known for this GPU model.")

    existing = int(Fraction(h.trailing_micros, 3) * min(trend, Fraction(1)))
    a.append(
        f"existing monthly share E = trailing 90 d {_usd(h.trailing_micros)} / 3 × min(trend {float(trend):.3f}, 1)"
        f" = {_usd(existing)}"
    )
    contracts_share = int(contract_monthly * share_fraction)
    a.append(
        f"contracted monthly share C = {_usd(contract_monthly)} × {float(share_fraction):.4f} = {_usd(contracts_share)}"
    )
    per_gpu = int(m.price_micros * HOURS_PER_MONTH * util * share_fraction) if has_history else 0
    if has_history:
        a.append(
            f"new GPU monthly share = {_usd(m.price_micros)}/h × {HOURS_PER_MONTH} h × utilisation {float(util):.3f} × "
            f"{float(share_fraction):.4f} = {_usd(per_gpu)} per GPU"
        )
    else:
        a.append("new GPU earnings not counted: no earnings history (financed on contracted revenue only)")

    fee_bps = BASE_FEE_BPS
    fee_parts = [f"base {BASE_FEE_BPS / 100:.0f}%"]
    if not any_verified:
        fee_bps += 200
        fee_parts.append("+2% no verified node")
    if reliability < GOOD_RELIABILITY:
        fee_bps += 300
        fee_parts.append(f"+3% reliability {reliability:.1%} < 95%")
    if has_history and trend < Fraction(9, 10):
        fee_bps += 200
        fee_parts.append(f"+2% falling trend {float(trend):.2f}")

    def terms(n: int, withhold_bps: int) -> tuple[int, int, int, int, Decimal | None]:
        principal = n * unit_cost_micros
        bps = fee_bps - (200 if contract_receivable * 2 >= principal else 0)
        bps = max(bps, MIN_FEE_BPS)
        fee = principal * bps // BPS
        monthly_share = existing + contracts_share + per_gpu * n
        monthly_repayment = monthly_share * withhold_bps // BPS
        return principal, fee, bps, monthly_repayment, _payoff_months(principal + fee, monthly_repayment)

    chosen: tuple[int, int] | None = None
    for n in range(count, 0, -1):
        for withhold in (BASE_WITHHOLD_BPS, MAX_WITHHOLD_BPS):
            months = terms(n, withhold)[4]
            if months is not None and months <= MAX_PAYOFF_MONTHS:
                chosen = (n, withhold)
                break
        if chosen:
            break
    if chosen is None:
        _, _, _, repay, months = terms(1, MAX_WITHHOLD_BPS)
        shown = "never" if months is None else f"{months} months"
        d.reasons.append(
            f"D5: even one GPU at a {MAX_WITHHOLD_BPS / 100:.0f}% withhold rate would take {shown} to repay "
            f"(monthly repayment {_usd(repay)}); the maximum is {MAX_PAYOFF_MONTHS} months."
        )
    if d.reasons:
        a.append("declined: " + "; ".join(r.split(":")[0] for r in d.reasons))
        return d
    assert chosen is not None
    n, withhold = chosen
    principal, fee, bps, monthly_repayment, months = terms(n, withhold)
    assert months is not None
    if bps != fee_bps:
        fee_parts.append("-2% reserved contracts cover ≥ half of the principal")
    monthly_share = existing + contracts_share + per_gpu * n
    if n < count:
        a.append(f"{count} GPUs would need more than {MAX_PAYOFF_MONTHS} months: offer reduced to {n} GPUs")
    a.append(f"principal = {n} × {_usd(unit_cost_micros)} = {_usd(principal)}")
    a.append(f"fee rate = {' '.join(fee_parts)} = {bps / 100:.2f}%; fee = {_usd(fee)}")
    a.append(f"monthly share M = E + C + N = {_usd(monthly_share)}")
    a.append(f"withhold rate {withhold / 100:.0f}% → monthly repayment {_usd(monthly_repayment)}")
    a.append(f"expected payoff = ({_usd(principal)} + {_usd(fee)}) / {_usd(monthly_repayment)} = {months} months")
    min_progress = math.ceil(monthly_repayment)
    a.append(f"minimum progress per 60 days = half of 2 × monthly repayment = {_usd(min_progress)}")
    d.offered = True
    d.count = n
    d.principal_micros = principal
    d.fee_micros = fee
    d.withhold_bps = withhold
    d.expected_payoff_months = months
    d.min_progress_micros = min_progress
    return d
