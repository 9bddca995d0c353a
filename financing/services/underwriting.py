"""Underwriting: an upgrade advance offer (or decline reasons) from what only the broker knows.

Rules (version RULES_VERSION). All money in integer micro-dollars; the arithmetic is stored with the offer. A
contract-backed advance (open demand a provider fulfils by buying hardware) has its own rules:
services/contract_underwriting.py.

Inputs (financing/selectors/underwriting.py)
  * history: settled customer payments only — usage settlements of the provider's leases and paid months of its
    reserved contracts (never pending or disputed usage) — provider share over the trailing 90 days. What counts:
      - arm's length: payments from related parties (selectors/parties.py: same person, e-mail domain, payment
        method or network address) are not counted;
      - seasoning: payments for usage on a node registered less than 30 days ago are not counted (yet);
      - concentration: when one customer paid more than half of the rest, half of the excess is not counted;
    split into the last 30 days and the 60 before. trend = (last 30 days) / (earlier 60 / 2).
  * nodes: the target node (when given) or all the provider's nodes; reliability is GPU-weighted over the nodes
    registered at least 30 days (a new node has no reliability yet).
  * market for the financed model: median listed on-demand price (catalog reference price with no listings) and
    utilisation over 30 days = rated GPU-ms of leases on that model / listed GPU-ms of that model.
  * reserved contracts on the provider's nodes: monthly payment and unpaid months (a receivable).
  * open advances: the monthly share they were underwritten on and their withhold rates.
  * risk flags (services/risk.py): capped-usage anomalies and hardware changes in the trailing 90 days.

Projection of the provider's monthly share M (what the withhold rate applies to), by the one earnings model of
marketplace/services/earnings.py (the fleet assessment shows the same figures)
  * share fraction s = 1 - platform fee rate - reserve rate (what settlement credits the provider).
  * existing E = counted trailing / 3 × min(trend, 1), less what open advances were already underwritten on.
  * new GPUs N = count × price × 730 h × projection utilisation (market, clamped to 25–85 %) × s, only when the
    provider has counted earnings (a provider without history is financed on contracts only).
  * contracts C = Σ monthly payment × s over active reserved contracts with unpaid months.
  * M = E + N + C.

Declines (each one listed as a reason)
  D1 the model is not AI-grade (catalog tier "unsuitable").
  D2 no counted earnings in the trailing 90 days and no reserved contract to finance against.
  D3 the provider has a delinquent or defaulted advance.
  D4 GPU-weighted reliability of the seasoned nodes considered is below 80 %.
  D5 even one GPU at the highest withhold rate would take longer than 24 months to repay.
  D6 no price is known for the model (no listings and no reference price).
  D7 related-party earnings: at least 10 % of the settled earnings came from accounts related to the provider
     (a provider booking its own nodes to manufacture history).
  D8 three or more risk flags in the trailing 90 days.
  D9 the provider's advances together would withhold more than 80 % of its earnings.

Offer
  * fee rate = 8 % + 2 % if no considered node is verified + 3 % if reliability < 95 % (or not known yet) + 2 %
    if trend < 0.9 + 1 % per risk flag (at most 3 %) − 2 % if reserved contracts cover at least half of the
    principal; never below 5 %. fee = principal × rate (floored).
  * withhold rate: 20 %; 30 % if 20 % would need more than 24 months.
  * if the full count still needs more than 24 months, the offer is for the largest count that does not.
  * expected payoff months = (principal + fee) / (M × withhold rate), one decimal, rounded up.
  * minimum progress per 60 days = half of the expected 60-day repayment = ceil(M × withhold rate).
"""

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

from common.money import format_usd
from financing.selectors.underwriting import UnderwritingInputs
from financing.services.risk import DECLINE_FLAGS, FLAG_FEE_BPS, MAX_FLAG_FEE_BPS
from marketplace.services.earnings import (
    HOURS_PER_MONTH,
    gpu_monthly_share_micros,
    payoff_months,
    projection_utilisation,
    provider_share_fraction,
)

RULES_VERSION = "2027-01.1"
MAX_PAYOFF_MONTHS = 24
MIN_RELIABILITY = 0.80
GOOD_RELIABILITY = 0.95
BASE_WITHHOLD_BPS = 2000
MAX_WITHHOLD_BPS = 3000
MAX_TOTAL_WITHHOLD_BPS = 8000
RELATED_DECLINE_SHARE = Fraction(1, 10)
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
    per_gpu_monthly_micros: int = 0
    utilisation: Fraction = Fraction(0)


def _usd(micros: int) -> str:
    return format_usd(micros=micros)


@dataclass
class _Figures:
    """What the rules compute from the inputs before choosing the offer."""

    share: Fraction
    trend: Fraction
    reliability: float | None
    any_verified: bool
    observed_util: Fraction | None
    util: Fraction
    has_history: bool
    existing: int
    contracts_share: int
    contract_receivable: int
    per_gpu: int
    fee_bps: int
    fee_parts: list[str]


def _figures(inputs: UnderwritingInputs) -> _Figures:
    h, m = inputs.history, inputs.market
    share = provider_share_fraction()
    trend = (
        Fraction(h.recent_micros * 2, h.earlier_micros)
        if h.earlier_micros > 0
        else (Fraction(1) if h.recent_micros > 0 else Fraction(0))
    )
    seasoned = [n for n in inputs.nodes if n.seasoned]
    gpus = sum(n.gpu_count for n in seasoned)
    reliability = sum(n.reliability * n.gpu_count for n in seasoned) / gpus if gpus else None
    observed = Fraction(m.used_gpu_ms, m.capacity_gpu_ms) if m.capacity_gpu_ms else None
    util = projection_utilisation(observed=observed)
    has_history = h.trailing_micros > 0
    existing = max(0, int(Fraction(h.trailing_micros, 3) * min(trend, Fraction(1))) - inputs.relied_monthly_micros)
    f = _Figures(
        share=share,
        trend=trend,
        reliability=reliability,
        any_verified=any(n.verified for n in inputs.nodes),
        observed_util=observed,
        util=util,
        has_history=has_history,
        existing=existing,
        contracts_share=int(sum(c.monthly_micros for c in inputs.contracts) * share),
        contract_receivable=sum(c.monthly_micros * c.remaining_months for c in inputs.contracts),
        per_gpu=gpu_monthly_share_micros(price_micros=m.price_micros, utilisation=util, share_fraction=share),
        fee_bps=BASE_FEE_BPS,
        fee_parts=[f"base {BASE_FEE_BPS / 100:.0f}%"],
    )
    if not f.any_verified:
        f.fee_bps += 200
        f.fee_parts.append("+2% no verified node")
    if reliability is None or reliability < GOOD_RELIABILITY:
        f.fee_bps += 300
        shown = "not known yet" if reliability is None else f"{reliability:.1%} < 95%"
        f.fee_parts.append(f"+3% reliability {shown}")
    if has_history and trend < Fraction(9, 10):
        f.fee_bps += 200
        f.fee_parts.append(f"+2% falling trend {float(trend):.2f}")
    if inputs.flags.total:
        add = min(inputs.flags.total * FLAG_FEE_BPS, MAX_FLAG_FEE_BPS)
        f.fee_bps += add
        f.fee_parts.append(f"+{add / 100:.0f}% {inputs.flags.total} risk flag(s)")
    return f


def _inputs_shown(inputs: UnderwritingInputs, f: _Figures, count: int, unit_cost_micros: int) -> dict[str, Any]:
    h, m = inputs.history, inputs.market
    return {
        "settled_90d_earnings": _usd(h.gross_micros),
        "related_party_earnings": _usd(h.related_micros),
        "related_parties": {str(k): v for k, v in sorted(h.related.items())},
        "unseasoned_node_earnings": _usd(h.unseasoned_micros),
        "concentration_discount": _usd(h.concentration_discount_micros),
        "top_customer_share": f"{float(h.top_customer_share):.3f}",
        "trailing_90d_earnings": _usd(h.trailing_micros),
        "last_30d_earnings": _usd(h.recent_micros),
        "earlier_60d_earnings": _usd(h.earlier_micros),
        "trend": f"{float(f.trend):.3f}",
        "nodes_considered": [n.node_id for n in inputs.nodes],
        "reliability": "not known yet" if f.reliability is None else f"{f.reliability:.3f}",
        "verified_node": f.any_verified,
        "market_price_per_gpu_hour": _usd(m.price_micros),
        "market_price_source": m.price_source,
        "market_listings": m.listings,
        "market_utilisation_30d": None if f.observed_util is None else f"{float(f.observed_util):.3f}",
        "utilisation_used": f"{float(f.util):.3f}",
        "reserved_contracts": [c.contract_id for c in inputs.contracts],
        "reserved_monthly": _usd(sum(c.monthly_micros for c in inputs.contracts)),
        "reserved_receivable": _usd(f.contract_receivable),
        "troubled_advances": inputs.troubled_advances,
        "open_advances_monthly_relied_on": _usd(inputs.relied_monthly_micros),
        "open_advances_withhold_rate": f"{inputs.open_withhold_bps / 100:.0f}%",
        "risk_flags": {
            "anomalies": inputs.flags.anomalies,
            "hardware_changes": inputs.flags.hardware_changes,
            "details": list(inputs.flags.details),
        },
        "unit_cost": _usd(unit_cost_micros),
        "requested_count": count,
        "provider_share_fraction": f"{float(f.share):.4f}",
        "rules_version": RULES_VERSION,
    }


def _declines(inputs: UnderwritingInputs, f: _Figures, tier: str) -> list[str]:
    h, reasons = inputs.history, []
    if tier == "unsuitable":
        reasons.append("D1: the GPU model is not AI-grade (catalog tier 'unsuitable'); finance an AI-grade model.")
    if not f.has_history and not inputs.contracts:
        reasons.append(
            "D2: no counted earnings in the last 90 days (arm's-length customers, nodes older than 30 days) and no "
            "reserved contract on your nodes to finance against; you can finance hardware against open contract "
            "demand instead."
        )
    if inputs.troubled_advances:
        reasons.append("D3: you have a delinquent or defaulted advance.")
    if f.reliability is not None and f.reliability < MIN_RELIABILITY:
        reasons.append(f"D4: node reliability {f.reliability:.1%} is below the {MIN_RELIABILITY:.0%} minimum.")
    if inputs.market.price_micros <= 0:
        reasons.append("D6: no market or reference price is known for this GPU model.")
    if h.related_micros > 0 and h.related_micros >= h.gross_micros * RELATED_DECLINE_SHARE:
        who = "; ".join(f"customer #{c}: {', '.join(r)}" for c, r in sorted(h.related.items()))
        reasons.append(
            f"D7: {_usd(h.related_micros)} of your {_usd(h.gross_micros)} settled earnings in the last 90 days came "
            f"from accounts related to you ({who}). Related-party earnings are not counted, and earnings "
            "manufactured by booking your own nodes are declined."
        )
    if inputs.flags.total >= DECLINE_FLAGS:
        reasons.append(
            f"D8: {inputs.flags.anomalies} usage anomalies and {inputs.flags.hardware_changes} hardware changes in "
            f"the last 90 days (at most {DECLINE_FLAGS - 1} risk flags)."
        )
    return reasons


def _history_lines(inputs: UnderwritingInputs, f: _Figures) -> list[str]:
    h = inputs.history
    return [
        f"settled earnings 90 d {_usd(h.gross_micros)} − related parties {_usd(h.related_micros)} − unseasoned "
        f"nodes (< 30 days) {_usd(h.unseasoned_micros)} − concentration discount "
        f"{_usd(h.concentration_discount_micros)} (top customer {float(h.top_customer_share):.0%} of arm's-length)"
        f" = counted {_usd(h.trailing_micros)}",
        f"existing monthly share E = counted {_usd(h.trailing_micros)} / 3 × min(trend {float(f.trend):.3f}, 1) − "
        f"relied on by open advances {_usd(inputs.relied_monthly_micros)} = {_usd(f.existing)}",
        f"contracted monthly share C = {_usd(sum(c.monthly_micros for c in inputs.contracts))} × "
        f"{float(f.share):.4f} = {_usd(f.contracts_share)}",
        f"new GPU monthly share = {_usd(inputs.market.price_micros)}/h × {HOURS_PER_MONTH} h × utilisation "
        f"{float(f.util):.3f} × {float(f.share):.4f} = {_usd(f.per_gpu)} per GPU"
        + ("" if f.has_history else " (not counted: no earnings history; financed on contracted revenue only)"),
    ]


class _Terms(NamedTuple):
    principal: int
    fee: int
    fee_bps: int
    repayment: int  # per month
    months: Decimal | None  # expected payoff; None: never


def _terms(f: _Figures, *, n: int, withhold_bps: int, unit_cost_micros: int) -> _Terms:
    """The terms of an advance for `n` GPUs repaid by withholding `withhold_bps` of the monthly share."""
    counted_per_gpu = f.per_gpu if f.has_history else 0
    principal = n * unit_cost_micros
    bps = max(f.fee_bps - (200 if f.contract_receivable * 2 >= principal else 0), MIN_FEE_BPS)
    fee = principal * bps // BPS
    repayment = (f.existing + f.contracts_share + counted_per_gpu * n) * withhold_bps // BPS
    return _Terms(
        principal, fee, bps, repayment, payoff_months(due_micros=principal + fee, monthly_repayment_micros=repayment)
    )


def _terms_choose(f: _Figures, *, count: int, withholds: list[int], unit_cost_micros: int) -> tuple[int, int] | None:
    """(GPUs, withhold rate): the most GPUs, at the lowest rate, repaid within MAX_PAYOFF_MONTHS; None: none is."""
    return next(
        (
            (n, w)
            for n in range(count, 0, -1)
            for w in withholds
            if (months := _terms(f, n=n, withhold_bps=w, unit_cost_micros=unit_cost_micros).months) is not None
            and months <= MAX_PAYOFF_MONTHS
        ),
        None,
    )


def _terms_declines(
    inputs: UnderwritingInputs, f: _Figures, *, withholds: list[int], unit_cost_micros: int
) -> list[str]:
    """D9 (no withhold rate left under the total cap) or D5 (not even one GPU repaid in time)."""
    if not withholds:
        return [
            f"D9: your open advances already withhold {inputs.open_withhold_bps / 100:.0f}% of your earnings; "
            f"together they may withhold at most {MAX_TOTAL_WITHHOLD_BPS / 100:.0f}%."
        ]
    one = _terms(f, n=1, withhold_bps=withholds[-1], unit_cost_micros=unit_cost_micros)
    shown = "never" if one.months is None else f"{one.months} months"
    return [
        f"D5: even one GPU at a {withholds[-1] / 100:.0f}% withhold rate would take {shown} to repay "
        f"(monthly repayment {_usd(one.repayment)}); the maximum is {MAX_PAYOFF_MONTHS} months."
    ]


def _offer_make(d: Decision, f: _Figures, *, count: int, n: int, withhold: int, unit_cost_micros: int) -> None:
    """Fill the offer for `n` GPUs at `withhold` into `d`, with its arithmetic."""
    t = _terms(f, n=n, withhold_bps=withhold, unit_cost_micros=unit_cost_micros)
    assert t.months is not None
    if t.fee_bps != max(f.fee_bps, MIN_FEE_BPS):
        f.fee_parts.append("-2% reserved contracts cover ≥ half of the principal")
    counted_per_gpu = f.per_gpu if f.has_history else 0
    a = d.arithmetic
    if n < count:
        a.append(f"{count} GPUs would need more than {MAX_PAYOFF_MONTHS} months: offer reduced to {n} GPUs")
    a.append(f"principal = {n} × {_usd(unit_cost_micros)} = {_usd(t.principal)}")
    a.append(f"fee rate = {' '.join(f.fee_parts)} = {t.fee_bps / 100:.2f}%; fee = {_usd(t.fee)}")
    a.append(f"monthly share M = E + C + N × {n} = {_usd(f.existing + f.contracts_share + counted_per_gpu * n)}")
    a.append(f"withhold rate {withhold / 100:.0f}% → monthly repayment {_usd(t.repayment)}")
    a.append(f"expected payoff = ({_usd(t.principal)} + {_usd(t.fee)}) / {_usd(t.repayment)} = {t.months} months")
    min_progress = math.ceil(t.repayment)
    a.append(f"minimum progress per 60 days = half of 2 × monthly repayment = {_usd(min_progress)}")
    d.offered, d.count, d.principal_micros, d.fee_micros = True, n, t.principal, t.fee
    d.withhold_bps, d.expected_payoff_months, d.min_progress_micros = withhold, t.months, min_progress


def underwrite(*, inputs: UnderwritingInputs, tier: str, count: int, unit_cost_micros: int) -> Decision:
    """Apply the rules of this module's docstring. Pure: no database access."""
    f = _figures(inputs)
    d = Decision(offered=False, per_gpu_monthly_micros=f.per_gpu, utilisation=f.util)
    d.inputs = _inputs_shown(inputs, f, count, unit_cost_micros)
    d.arithmetic = _history_lines(inputs, f)
    d.reasons = _declines(inputs, f, tier)
    withholds = [
        w for w in (BASE_WITHHOLD_BPS, MAX_WITHHOLD_BPS) if inputs.open_withhold_bps + w <= MAX_TOTAL_WITHHOLD_BPS
    ]
    chosen = _terms_choose(f, count=count, withholds=withholds, unit_cost_micros=unit_cost_micros)
    if chosen is None:
        d.reasons += _terms_declines(inputs, f, withholds=withholds, unit_cost_micros=unit_cost_micros)
    if d.reasons or chosen is None:
        d.arithmetic.append("declined: " + "; ".join(r.split(":")[0] for r in d.reasons))
        return d
    n, withhold = chosen
    _offer_make(d, f, count=count, n=n, withhold=withhold, unit_cost_micros=unit_cost_micros)
    return d
