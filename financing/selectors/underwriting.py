"""Underwriting inputs: the provider's metered earnings, the GPU model's market, its nodes, contracts, advances."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from django.contrib.auth.models import User
from django.db.models import Case, Sum, Value, When
from django.utils import timezone

from billing.models import Settlement
from billing.services.settlement import charge_split
from financing.models import (
    OPEN_ADVANCE_STATUSES,
    Advance,
    AdvanceStatus,
    ReservedContract,
    ReservedContractCharge,
    ReservedContractStatus,
)
from financing.selectors.parties import related_parties
from financing.services.risk import RiskFlags, provider_risk_flags_for
from marketplace.models import GPUModel, Node

TRAILING_DAYS = 90
RECENT_DAYS = 30
MARKET_DAYS = 30
SEASONING_DAYS = 30
MS_PER_DAY = 86_400_000
CONCENTRATION_SHARE = Fraction(1, 2)


@dataclass
class EarningsHistory:
    """Settled provider share over the trailing window, and what of it underwriting counts (see the rules in
    services/underwriting.py): `trailing/recent/earlier` are the counted amounts."""

    trailing_micros: int  # counted provider share over the last TRAILING_DAYS
    recent_micros: int  # of which in the last RECENT_DAYS
    earlier_micros: int  # the TRAILING_DAYS - RECENT_DAYS before
    first_settlement_at: datetime | None
    gross_micros: int = 0  # every settled payment's provider share in the window
    related_micros: int = 0  # from related parties: not counted
    unseasoned_micros: int = 0  # from nodes younger than SEASONING_DAYS: not counted
    concentration_discount_micros: int = 0  # half of one customer's excess over half of the arm's-length total
    top_customer_share: Fraction = Fraction(0)
    related: dict[int, list[str]] = field(default_factory=dict)  # customer user id → reasons


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
    seasoned: bool = True  # registered at least SEASONING_DAYS ago


@dataclass
class UnderwritingInputs:
    history: EarningsHistory
    market: MarketSnapshot
    nodes: list[NodeStanding]
    contracts: list[ContractBacking] = field(default_factory=list)
    troubled_advances: int = 0
    open_advances_remaining_micros: int = 0
    relied_monthly_micros: int = 0  # monthly share the provider's open advances were underwritten on
    open_withhold_bps: int = 0  # withhold rates of the provider's open (and funding) advances, together
    flags: RiskFlags = field(default_factory=RiskFlags)


def _settled_shares(*, provider_user: User, since: datetime, now: datetime) -> dict[tuple[int, int], list[int]]:
    """{(customer id, node id): [provider share in the window, of which recent]} over settled payments only:
    usage settlements of the provider's leases and the months its reserved contracts were paid. Pending usage
    is not a settlement; money refused or capped never reached one."""
    recent_since = now - timedelta(days=RECENT_DAYS)
    out: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    rows = (
        Settlement.objects.filter(lease_account__provider=provider_user, created_at__gte=since, created_at__lte=now)
        .values("lease_account__customer_id", "lease_account__node_id")
        .annotate(
            total=Sum("provider_micros"),
            recent=Sum(Case(When(created_at__gte=recent_since, then="provider_micros"), default=Value(0))),
        )
    )
    for r in rows:
        cell = out[(r["lease_account__customer_id"], r["lease_account__node_id"])]
        cell[0] += r["total"] or 0
        cell[1] += r["recent"] or 0
    charges = ReservedContractCharge.objects.filter(
        contract__provider=provider_user, created_at__gte=since, created_at__lte=now
    ).values_list("contract__customer_id", "contract__node_id", "amount_micros", "created_at")
    for customer_id, node_id, amount, at in charges:
        share = charge_split(amount_micros=amount)[2]
        cell = out[(customer_id, node_id)]
        cell[0] += share
        cell[1] += share if at >= recent_since else 0
    return out


def provider_earnings_history(*, provider_user: User, now: datetime) -> EarningsHistory:
    """The provider's settled share over the trailing window, and what of it counts: arm's-length customers
    only, seasoned nodes only, one customer's concentration discounted."""
    shares = _settled_shares(provider_user=provider_user, since=now - timedelta(days=TRAILING_DAYS), now=now)
    related = related_parties(provider_user=provider_user, customer_ids={c for c, _ in shares})
    seasoned_before = now - timedelta(days=SEASONING_DAYS)
    seasoned = set(
        Node.objects.filter(pk__in={n for _, n in shares}, created_at__lte=seasoned_before).values_list("pk", flat=True)
    )
    gross = related_total = unseasoned = 0
    counted: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for (customer_id, node_id), (total, recent) in shares.items():
        gross += total
        if customer_id in related:
            related_total += total
        elif node_id not in seasoned:
            unseasoned += total
        else:
            counted[customer_id][0] += total
            counted[customer_id][1] += recent
    arms_length = sum(t for t, _ in counted.values())
    top = max((t for t, _ in counted.values()), default=0)
    discount = max(0, int(top - arms_length * CONCENTRATION_SHARE)) // 2
    trailing = arms_length - discount
    recent = sum(r for _, r in counted.values())
    if arms_length:
        recent = recent * trailing // arms_length  # the discount spreads evenly over the window
    first = (
        Settlement.objects.filter(lease_account__provider=provider_user, provider_micros__gt=0)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return EarningsHistory(
        trailing_micros=trailing,
        recent_micros=recent,
        earlier_micros=trailing - recent,
        first_settlement_at=first,
        gross_micros=gross,
        related_micros=related_total,
        unseasoned_micros=unseasoned,
        concentration_discount_micros=discount,
        top_customer_share=Fraction(top, arms_length) if arms_length else Fraction(0),
        related=related,
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
    """Active reserved contracts on the provider's nodes with their unpaid months (the receivable); a contract
    delivered for open demand already backs the advance that financed it and is not counted again."""
    out = []
    active = ReservedContract.objects.filter(provider=provider_user, status=ReservedContractStatus.ACTIVE)
    for c in active.filter(demand__isnull=True).order_by("pk"):  # a delivered demand backs its own advance
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
    seasoned_before = now - timedelta(days=SEASONING_DAYS)
    nodes = [
        NodeStanding(node_id=pk, gpu_count=n, reliability=float(r), verified=bool(v), seasoned=c <= seasoned_before)
        for pk, n, r, v, c in nodes_qs.order_by("pk").values_list(
            "pk", "gpu_count", "reliability", "verified", "created_at"
        )
    ]
    open_adv = list(
        Advance.objects.filter(provider=provider_user, status__in=[*OPEN_ADVANCE_STATUSES, AdvanceStatus.FUNDING])
    )
    troubled = Advance.objects.filter(
        provider=provider_user, status__in=[AdvanceStatus.DELINQUENT, AdvanceStatus.DEFAULTED]
    ).count()
    return UnderwritingInputs(
        history=provider_earnings_history(provider_user=provider_user, now=now),
        market=gpu_model_market(gpu_model=gpu_model, now=now),
        nodes=nodes,
        contracts=provider_contract_backing(provider_user=provider_user, now=now),
        troubled_advances=troubled,
        open_advances_remaining_micros=sum(a.remaining_micros for a in open_adv),
        relied_monthly_micros=sum(
            a.min_progress_micros * 10_000 // a.base_withhold_bps for a in open_adv if a.base_withhold_bps
        ),
        open_withhold_bps=sum(a.base_withhold_bps for a in open_adv),
        flags=provider_risk_flags_for(provider_user=provider_user, since=now - timedelta(days=TRAILING_DAYS)),
    )
