"""Contract-backed underwriting: an advance for the hardware to fulfil open contract demand, priced against the
contract's receivable. For providers with or without earnings history (version CONTRACT_RULES_VERSION).

A customer's reserved contract that no provider has capacity for is posted as open demand (services/demand.py):
N GPUs of a model for M months at a monthly price. A provider offers to fulfil it by buying the hardware; the
advance is repaid, first, from the contract's payments through the existing waterfall (the withhold rate applies
to every settlement of the provider's share, contract months included).

Receivable (all money in micro-dollars)
  * S = monthly payment × provider share fraction s (marketplace/services/earnings.py): the provider's share of
    each month, what withholding applies to. Committed receivable R = S × term.
  * the customer's credit (financing/selectors/demand.py): prepaid months m = min(term, wallet // payment) carry
    no credit haircut; the rest is haircut by
        0 %  when it paid at least one monthly payment's worth in the last 180 days and never let a contract lapse,
        15 % when it has no such history (a new customer),
        40 % when it let a reserved contract lapse before;
    credit-adjusted R_c = S × m + S × (term − m) × (1 − credit haircut).
  * non-delivery haircut (the hardware may never come online): 10 % for a provider with a verified node and
    counted earnings, else 20 %. Eligible E = R_c × (1 − non-delivery haircut).

Offer
  * fee rate = 8 % + 2 % if the provider has no verified node + 1 % per risk flag (at most 3 %); fee = principal ×
    rate (floored).
  * the most the contract carries: principal + fee ≤ E × 80 % (MAX_CONTRACT_WITHHOLD_BPS), so principal ≤
    E × 80 % / (1 + fee rate), floored to the cent. principal = min(hardware cost, that); the provider pays the
    rest of the hardware itself.
  * withhold rate: the lowest of 20 %, 25 %, … 80 % at which (principal + fee) / (S × rate) ≤ the term.
  * expected payoff = (principal + fee) / (S × withhold rate), one decimal, rounded up; minimum progress per
    60 days = S × withhold rate (half of two months), counted from delivery.

Delivery (services/demand.py): the provider has `delivery_days` from disbursement to register the node and have it
verified (a passed compute challenge). Missed: the contract is released (the customer pays nothing), the advance
is recalled from the provider's payable balance, and what remains is recovered through a raised withhold rate on
its other verified nodes (delinquent) or, with none, written down (defaulted).

Declines
  C1 the contract carries less than half of the hardware cost.
  C2 the demand is not open, or its model is not AI-grade.
  D3 the provider has a delinquent or defaulted advance.
  D7 the customer behind the demand is a related party of the provider (selectors/parties.py).
  D8 three or more risk flags in the trailing 90 days.
  D9 the provider's advances together would withhold more than 100 % of its earnings.
"""

from decimal import Decimal
from fractions import Fraction

from common.money import format_usd
from financing.models import ContractDemandStatus
from financing.selectors.demand import ContractUnderwritingInputs
from financing.services.risk import DECLINE_FLAGS, FLAG_FEE_BPS, MAX_FLAG_FEE_BPS
from financing.services.underwriting import BASE_FEE_BPS, BPS, Decision
from marketplace.services.earnings import payoff_months, provider_share_fraction

CONTRACT_RULES_VERSION = "2027-01.c1"
MAX_CONTRACT_WITHHOLD_BPS = 8000
MIN_CONTRACT_WITHHOLD_BPS = 2000
WITHHOLD_STEP_BPS = 500
MAX_TOTAL_WITHHOLD_BPS = 10_000
MIN_COVERAGE = Fraction(1, 2)
CENT = 10_000


def _usd(micros: int) -> str:
    return format_usd(micros=micros)


def _credit_haircut(inputs: ContractUnderwritingInputs) -> tuple[Fraction, str]:
    c, monthly = inputs.credit, inputs.demand.monthly_micros
    if c.lapsed_contracts:
        return Fraction(40, 100), f"40% ({c.lapsed_contracts} lapsed contract(s))"
    if c.paid_micros >= monthly:
        return Fraction(0), f"0% (paid {_usd(c.paid_micros)} in 180 days, no lapse)"
    return Fraction(15, 100), "15% (no payment history yet)"


def _declines(inputs: ContractUnderwritingInputs) -> list[str]:
    reasons = []
    demand = inputs.demand
    if demand.status != ContractDemandStatus.OPEN or demand.gpu_model.tier == "unsuitable":
        reasons.append(f"C2: demand #{demand.pk} is {demand.status}, not open for offers.")
    if inputs.troubled_advances:
        reasons.append("D3: you have a delinquent or defaulted advance.")
    if inputs.related_reasons:
        reasons.append(
            f"D7: the customer behind demand #{demand.pk} is related to you ({', '.join(inputs.related_reasons)}); "
            "a contract with yourself backs nothing."
        )
    if inputs.flags.total >= DECLINE_FLAGS:
        reasons.append(
            f"D8: {inputs.flags.anomalies} usage anomalies and {inputs.flags.hardware_changes} hardware changes in "
            f"the last 90 days (at most {DECLINE_FLAGS - 1} risk flags)."
        )
    return reasons


def _withhold(due: int, share: int, term: int, open_bps: int) -> tuple[int, Decimal | None] | None:
    for bps in range(MIN_CONTRACT_WITHHOLD_BPS, MAX_CONTRACT_WITHHOLD_BPS + 1, WITHHOLD_STEP_BPS):
        if open_bps + bps > MAX_TOTAL_WITHHOLD_BPS:
            return None
        months = payoff_months(due_micros=due, monthly_repayment_micros=share * bps // BPS)
        if months is not None and months <= term:
            return bps, months
    return None


def _inputs_shown(
    inputs: ContractUnderwritingInputs, *, prepaid: int, credit_note: str, h_delivery: Fraction, cost: int, s: Fraction
) -> dict[str, object]:
    demand, credit, term = inputs.demand, inputs.credit, inputs.demand.term_months
    return {
        "demand": demand.pk,
        "customer": demand.customer_id,
        "contract": f"{demand.gpu_count} × {demand.gpu_model.name} for {term} months at {_usd(demand.monthly_micros)}"
        " a month",
        "committed_payments": _usd(demand.monthly_micros * term),
        "customer_paid_180d": _usd(credit.paid_micros),
        "customer_lapsed_contracts": credit.lapsed_contracts,
        "customer_prepaid_balance": _usd(credit.wallet_micros),
        "prepaid_months": prepaid,
        "credit_haircut": credit_note,
        "non_delivery_haircut": f"{float(h_delivery):.0%}",
        "provider_counted_earnings_90d": _usd(inputs.provider_history_micros),
        "provider_verified_nodes": inputs.verified_nodes,
        "related_to_customer": inputs.related_reasons,
        "risk_flags": {"anomalies": inputs.flags.anomalies, "hardware_changes": inputs.flags.hardware_changes},
        "hardware_cost": _usd(cost),
        "unit_cost": _usd(inputs.unit_cost_micros),
        "delivery_days": demand.delivery_days,
        "provider_share_fraction": f"{float(s):.4f}",
        "rules_version": CONTRACT_RULES_VERSION,
    }


def underwrite_contract(*, inputs: ContractUnderwritingInputs) -> Decision:
    """Apply the rules of this module's docstring. Pure: no database access."""
    demand, credit = inputs.demand, inputs.credit
    s = provider_share_fraction()
    share = int(demand.monthly_micros * s)
    term = demand.term_months
    cost = demand.gpu_count * inputs.unit_cost_micros
    prepaid = min(term, credit.wallet_micros // demand.monthly_micros)
    h_credit, credit_note = _credit_haircut(inputs)
    seasoned = inputs.verified_nodes > 0 and inputs.provider_history_micros > 0
    h_delivery = Fraction(10, 100) if seasoned else Fraction(20, 100)
    credit_adjusted = int(share * prepaid + share * (term - prepaid) * (1 - h_credit))
    eligible = int(credit_adjusted * (1 - h_delivery))
    fee_bps, fee_parts = BASE_FEE_BPS, [f"base {BASE_FEE_BPS / 100:.0f}%"]
    if not inputs.verified_nodes:
        fee_bps += 200
        fee_parts.append("+2% no verified node")
    if inputs.flags.total:
        add = min(inputs.flags.total * FLAG_FEE_BPS, MAX_FLAG_FEE_BPS)
        fee_bps += add
        fee_parts.append(f"+{add / 100:.0f}% {inputs.flags.total} risk flag(s)")
    carried = eligible * MAX_CONTRACT_WITHHOLD_BPS // BPS
    principal_max = carried * BPS // (BPS + fee_bps)
    principal = min(cost, principal_max - principal_max % CENT)
    fee = principal * fee_bps // BPS
    d = Decision(offered=False, per_gpu_monthly_micros=share // demand.gpu_count)
    d.inputs = _inputs_shown(inputs, prepaid=prepaid, credit_note=credit_note, h_delivery=h_delivery, cost=cost, s=s)
    a = d.arithmetic
    a.append(f"provider share of each month S = {_usd(demand.monthly_micros)} × {float(s):.4f} = {_usd(share)}")
    a.append(f"committed receivable R = S × {term} months = {_usd(share * term)}")
    a.append(
        f"customer credit: {prepaid} month(s) prepaid in full, the other {term - prepaid} at haircut {credit_note} "
        f"→ R_c = {_usd(credit_adjusted)}"
    )
    a.append(
        f"non-delivery haircut {float(h_delivery):.0%} ({'verified node with earnings' if seasoned else 'no track'}"
        f" record)) → eligible E = {_usd(eligible)}"
    )
    a.append(
        f"the contract carries principal + fee ≤ E × {MAX_CONTRACT_WITHHOLD_BPS / 100:.0f}% = {_usd(carried)}; "
        f"fee rate {' '.join(fee_parts)} = {fee_bps / 100:.2f}% → principal ≤ {_usd(principal_max)}"
    )
    a.append(
        f"hardware {demand.gpu_count} × {_usd(inputs.unit_cost_micros)} = {_usd(cost)} → principal {_usd(principal)}"
        + ("" if principal == cost else f" (you pay the other {_usd(cost - principal)})")
    )
    d.reasons = _declines(inputs)
    if cost <= 0 or principal < cost * MIN_COVERAGE:
        d.reasons.append(
            f"C1: the contract carries {_usd(max(principal, 0))} of the {_usd(cost)} hardware, less than half; "
            "a longer term or a higher price would carry more."
        )
    chosen = _withhold(principal + fee, share, term, inputs.open_withhold_bps) if principal > 0 else None
    if chosen is None and not d.reasons:
        d.reasons.append(
            f"D9: your open advances already withhold {inputs.open_withhold_bps / 100:.0f}% of your earnings; together "
            f"they may withhold at most {MAX_TOTAL_WITHHOLD_BPS / 100:.0f}%."
        )
    if d.reasons or chosen is None:
        a.append("declined: " + "; ".join(r.split(":")[0] for r in d.reasons))
        return d
    withhold, months = chosen
    repayment = share * withhold // BPS
    a.append(f"fee = {_usd(principal)} × {fee_bps / 100:.2f}% = {_usd(fee)}")
    a.append(f"withhold rate {withhold / 100:.0f}% (the lowest that repays within the term) → {_usd(repayment)}/month")
    a.append(f"expected payoff = ({_usd(principal)} + {_usd(fee)}) / {_usd(repayment)} = {months} months from delivery")
    a.append(f"minimum progress per 60 days, from delivery = {_usd(repayment)}")
    a.append(
        f"delivery: within {demand.delivery_days} days of disbursement, or the contract is released and the advance "
        "recalled from your balance, then recovered from your other nodes or written down"
    )
    d.offered, d.count, d.principal_micros, d.fee_micros = True, demand.gpu_count, principal, fee
    d.withhold_bps, d.expected_payoff_months, d.min_progress_micros = withhold, months, repayment
    return d
