"""A lender's portfolio under stress, advance by advance (shown on the lender portal and in its API).

The stress (the same shocks as `simulate --scenario stress`, see the README):
  * market-backed advances: prices fall by half, so the monthly repayment halves; what is not repaid within the
    24-month limit (counted from disbursement) is lost;
  * contract-backed advances delivered: repaid by the contract's unpaid months (the provider's share at the advance's
    withhold rate); the customer keeps paying; what that cannot cover is lost;
  * contract-backed advances not delivered yet: the hardware never comes online and nothing is recovered;
  * delinquent advances: default now, everything remaining is lost.
Each funder bears its pro-rata share. Stressed return = (received + due after stress − funded) / funded.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from financing.models import OPEN_ADVANCE_STATUSES, Advance, AdvanceFunding, AdvanceStatus, ContractDemandStatus
from marketplace.services.earnings import provider_share_fraction

HORIZON_MONTHS = 24
BPS = 10_000


@dataclass
class StressRow:
    advance_id: int
    kind: str
    remaining_micros: int
    stressed_loss_micros: int


def advance_stressed_loss(*, advance: Advance, now: datetime) -> tuple[str, int]:
    """(kind, what of the advance's remaining due is lost under the stress)."""
    remaining = advance.remaining_micros
    if advance.status == AdvanceStatus.DELINQUENT:
        return "delinquent", remaining
    demand = advance.application.demand
    if demand is not None:
        if demand.status != ContractDemandStatus.DELIVERED or demand.contract is None:
            return "contract, not delivered", remaining
        c = demand.contract
        unpaid = max(0, c.term_months - c.months_paid)
        covered = int(c.monthly_micros * provider_share_fraction()) * advance.withhold_bps // BPS * unpaid
        return "contract, delivered", max(0, remaining - covered)
    elapsed = 0 if advance.disbursed_at is None else (now - advance.disbursed_at).days // 30
    stressed_monthly = advance.min_progress_micros // 2
    return "market", max(0, remaining - stressed_monthly * max(0, HORIZON_MONTHS - elapsed))


def lender_portfolio_stress(*, lender_user: User, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    rows, loss, funded, received, due = [], 0, 0, 0, 0
    for f in (
        AdvanceFunding.objects.filter(lender=lender_user)
        .exclude(advance__status__in=[AdvanceStatus.FUNDING, AdvanceStatus.CANCELLED])
        .select_related("advance", "advance__application__demand__contract")
    ):
        adv = f.advance
        share_due = adv.due_micros * f.amount_micros // adv.principal_micros
        funded += f.amount_micros
        received += f.received_micros
        if adv.status in OPEN_ADVANCE_STATUSES:
            kind, lost = advance_stressed_loss(advance=adv, now=now)
            mine = lost * f.amount_micros // adv.principal_micros
            remaining_mine = max(0, share_due - f.received_micros)
            loss += min(mine, remaining_mine)
            due += remaining_mine
            rows.append(StressRow(adv.pk, kind, remaining_mine, min(mine, remaining_mine)))
    gain = received + due - loss - funded
    return {
        "rows": rows,
        "funded": funded,
        "received": received,
        "due": due,
        "stressed_loss": loss,
        "stressed_return_pct": None if not funded else (Decimal(gain * 100) / Decimal(funded)).quantize(Decimal("0.1")),
    }
