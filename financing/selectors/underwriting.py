"""Underwriting inputs: the provider's metered earnings, the GPU model's market, its nodes, contracts, advances."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Sum
from django.utils import timezone

from billing.models import Settlement
from financing.models import OPEN_ADVANCE_STATUSES, Advance, AdvanceStatus, ReservedContract, ReservedContractStatus
from marketplace.models import GPUModel, Node

TRAILING_DAYS = 90
RECENT_DAYS = 30
MARKET_DAYS = 30
MS_PER_DAY = 86_400_000


@dataclass
class EarningsHistory:
    trailing_micros: int  # provider share over the last TRAILING_DAYS
    recent_micros: int  # of which in the last RECENT_DAYS
    earlier_micros: int  # the TRAILING_DAYS - RECENT_DAYS before
    first_settlement_at: datetime | None


@dataclass
class MarketSnapshot:
    price_micros: int
    price_source: str
    listings: int
    listed_gpus: int
    used_gpu_ms: int
    capacity_gpu_ms: int


@dataclass
class ContractBacking:
    contract_id: int
    node_id: int
    monthly_micros: int
    remaining_months: int


@dataclass
class NodeStanding:
    node_id: int
    gpu_count: int
    reliability: float
    verified: bool


@dataclass
class UnderwritingInputs:
    history: EarningsHistory
    market: MarketSnapshot
    nodes: list[NodeStanding]
    contracts: list[ContractBacking] = field(default_factory=list)
    troubled_advances: int = 0
    open_advances_remaining_micros: int = 0


def provider_earnings_history(*, provider_user: User, now: datetime) -> EarningsHistory:
    """The provider's metered share (settlements of its leases) over the trailing window."""
    since = now - timedelta(days=TRAILING_DAYS)
    recent_since = now - timedelta(days=RECENT_DAYS)
    rows = Settlement.objects.filter(lease_account__provider=provider_user, created_at__gte=since, created_at__lte=now)
    trailing = rows.aggregate(s=Sum("provider_micros"))["s"] or 0
    recent = rows.filter(created_at__gte=recent_since).aggregate(s=Sum("provider_micros"))["s"] or 0
    first = (
        Settlement.objects.filter(lease_account__provider=provider_user, provider_micros__gt=0)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return EarningsHistory(
        trailing_micros=trailing, recent_micros=recent, earlier_micros=trailing - recent, first_settlement_at=first
    )


def gpu_model_market(*, gpu_model: GPUModel, now: datetime) -> MarketSnapshot:
    """Median listed price and the model's utilisation over MARKET_DAYS (rated GPU-ms / listed GPU-ms)."""
    from marketplace.selectors.pricing import gpu_model_prices

    price = gpu_model_prices(gpu_models=[gpu_model])[gpu_model.pk]
    listed_gpus = Node.objects.filter(gpu_model=gpu_model, listed=True).aggregate(s=Sum("gpu_count"))["s"] or 0
    used = (
        Settlement.objects.filter(
            lease_account__gpu_model_name=gpu_model.name, created_at__gte=now - timedelta(days=MARKET_DAYS)
        ).aggregate(s=Sum("gpu_ms"))["s"]
        or 0
    )
    return MarketSnapshot(
        price_micros=price.micros_per_gpu_hour,
        price_source=price.source,
        listings=price.listings,
        listed_gpus=listed_gpus,
        used_gpu_ms=used,
        capacity_gpu_ms=listed_gpus * MARKET_DAYS * MS_PER_DAY,
    )


def provider_contract_backing(*, provider_user: User, now: datetime) -> list[ContractBacking]:
    """Active reserved contracts on the provider's nodes with their unpaid months (the receivable)."""
    out = []
    for c in ReservedContract.objects.filter(provider=provider_user, status=ReservedContractStatus.ACTIVE).order_by(
        "pk"
    ):
        remaining = c.term_months - c.months_paid
        if remaining > 0:
            out.append(
                ContractBacking(
                    contract_id=c.pk, node_id=c.node_id, monthly_micros=c.monthly_micros, remaining_months=remaining
                )
            )
    return out


def underwriting_inputs(
    *, provider_user: User, gpu_model: GPUModel, node: Node | None, now: datetime | None = None
) -> UnderwritingInputs:
    now = now or timezone.now()
    nodes_qs = Node.objects.filter(provider__user=provider_user)
    if node is not None:
        nodes_qs = nodes_qs.filter(pk=node.pk)
    nodes = [
        NodeStanding(node_id=pk, gpu_count=n, reliability=float(r), verified=bool(v))
        for pk, n, r, v in nodes_qs.order_by("pk").values_list("pk", "gpu_count", "reliability", "verified")
    ]
    open_adv = Advance.objects.filter(
        provider=provider_user, status__in=[*OPEN_ADVANCE_STATUSES, AdvanceStatus.FUNDING]
    )
    remaining = sum(a.remaining_micros for a in open_adv)
    troubled = Advance.objects.filter(
        provider=provider_user, status__in=[AdvanceStatus.DELINQUENT, AdvanceStatus.DEFAULTED]
    ).count()
    return UnderwritingInputs(
        history=provider_earnings_history(provider_user=provider_user, now=now),
        market=gpu_model_market(gpu_model=gpu_model, now=now),
        nodes=nodes,
        contracts=provider_contract_backing(provider_user=provider_user, now=now),
        troubled_advances=troubled,
        open_advances_remaining_micros=remaining,
    )
