"""Offer search: listed, online, non-cordoned nodes with free GPUs now, filtered in the database."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import (
    Case,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, NullIf
from django.utils import timezone

from broker.models import Lease, LeaseState
from broker.selectors.offer_query import Clause, OfferQueryError, parse_offer_order, parse_offer_query, tier_rank
from common.money import from_micros, to_micros
from marketplace.models import TIER_RANK, ChallengeState, GPUModel, Node, NodeStatus
from marketplace.services.gpu_names import match_slug
from marketplace.services.reliability import reliability_public

HOLDING_LEASE_STATES = (LeaseState.RESERVED, LeaseState.ACTIVE)
MAX_LIMIT = 500


@dataclass(frozen=True)
class Offer:
    node_id: int
    node_name: str
    gpu_name: str
    gpu_slug: str
    num_gpus: int  # free now
    total_gpus: int
    gpu_ram: Decimal
    compute_cap: Decimal | None
    tier: str
    region: str
    country: str
    reliability: float
    verified: bool
    price: Decimal  # dollars per GPU-hour, on demand
    min_bid: Decimal  # dollars per GPU-hour, interruptible
    dlperf: float | None
    dlperf_per_dollar: float | None
    inet_down: int
    inet_up: int
    cpu_cores: int  # free now (total minus what leases hold)
    ram: int  # GB free now
    disk: int  # GB free now
    available_until: datetime | None
    storage_price: Decimal = Decimal(0)  # dollars per GB-month of storage (0 = not charged)
    egress_price: Decimal = Decimal(0)  # dollars per GB sent (0 = not charged)


def held_gpus_subquery(*, at: datetime, field: str = "gpu_count") -> Subquery:
    """GPUs (or `field`: cpu_cores, ram_gb, disk_gb) of the outer node held at `at` by reserved or active
    leases."""
    held = (
        Lease.objects.filter(node=OuterRef("pk"), state__in=HOLDING_LEASE_STATES, starts_at__lte=at, ends_at__gt=at)
        .order_by()
        .values("node")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Subquery(held, output_field=IntegerField())


def _free(column: str, *, at: datetime) -> Any:
    """The node's `column` total minus what leases hold at `at` (CPU, RAM, disk are consumable)."""
    return F(column) - Coalesce(held_gpus_subquery(at=at, field=column), Value(0))


def _tier_rank_expr() -> Case:
    return Case(
        *[When(gpu_model__tier=str(tier), then=Value(rank)) for tier, rank in TIER_RANK.items()],
        default=Value(0),
        output_field=IntegerField(),
    )


def annotated_nodes(*, at: datetime | None = None) -> QuerySet[Node]:
    """Nodes annotated with `free_gpus`, `tier_rank` and `dlperf_per_dollar` (no availability filter)."""
    at = at or timezone.now()
    return Node.objects.select_related("gpu_model").annotate(
        free_gpus=F("gpu_count") - Coalesce(held_gpus_subquery(at=at), Value(0)),
        free_cpu=_free("cpu_cores", at=at),
        free_ram=_free("ram_gb", at=at),
        free_disk=_free("disk_gb", at=at),
        tier_rank=_tier_rank_expr(),
        dlperf_per_dollar=ExpressionWrapper(
            F("dlperf") * Value(1_000_000.0) / NullIf(Cast("price_micros", FloatField()), Value(0.0)),
            output_field=FloatField(),
        ),
    )


def listed_now(*, at: datetime | None = None) -> Q:
    """Listed, online, not cordoned, not failing its latest compute challenge, inside its availability window."""
    at = at or timezone.now()
    return (
        Q(listed=True, status=NodeStatus.ONLINE, cordoned=False)
        & ~Q(challenge_verdict=ChallengeState.FAILED)
        & (Q(available_from__isnull=True) | Q(available_from__lte=at))
        & (Q(available_until__isnull=True) | Q(available_until__gt=at))
    )


def available_offers(*, at: datetime | None = None) -> QuerySet[Node]:
    """The offer universe: listed-now nodes with at least one free GPU, annotated."""
    return annotated_nodes(at=at).filter(listed_now(at=at)).filter(Q(free_gpus__gt=0))


# Query-language field → (model expression, how to convert the parsed value).
_NUMERIC_COLUMNS: dict[str, str] = {
    "num_gpus": "free_gpus",
    "gpu_ram": "gpu_model__vram_gb",
    "compute_cap": "gpu_model__compute_capability",
    "reliability": "reliability",
    "price": "price_micros",
    "min_bid": "min_bid_micros",
    "dlperf": "dlperf",
    "dlperf_per_dollar": "dlperf_per_dollar",
    "inet_down": "inet_down_mbps",
    "inet_up": "inet_up_mbps",
    "cpu_cores": "free_cpu",
    "ram": "free_ram",
    "disk": "free_disk",
}
_FLOAT_COLUMNS = {"reliability", "dlperf", "dlperf_per_dollar"}
_LOOKUP = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "==": "exact"}

ORDER_COLUMNS: dict[str, str] = {
    **_NUMERIC_COLUMNS,
    "gpu_name": "gpu_model__name",
    "tier": "tier_rank",
    "region": "region",
    "country": "country",
    "verified": "verified",
}


def _db_value(field: str, value: Any) -> Any:
    if field in ("price", "min_bid"):
        return to_micros(amount=value)
    if field in _FLOAT_COLUMNS:
        return float(value)
    return value


def _gpu_name_q(value: str) -> Q:
    """A GPU name as users type it: the slug ("rtx-4090"), the catalog name ("GeForce RTX 4090") or any name the
    fleet parser understands ("RTX 4090", "4090", "rtx4090"); a name that is none of these is a 400 listing the
    names that exist."""
    lowered = value.lower()
    exact = Q(slug__iexact=lowered) | Q(name__iexact=value)
    slug = match_slug(value)
    if slug is not None:
        exact |= Q(slug=slug)
    slugs = list(GPUModel.objects.filter(exact).values_list("slug", flat=True))
    if not slugs:
        known = list(GPUModel.objects.order_by("name").values_list("name", "slug"))
        listing = ", ".join(f"{name} ({slug})" for name, slug in known)
        raise OfferQueryError(
            f"No GPU model is called {value!r}. Use a catalog name or slug: {listing}.",
            details={"field": "gpu_name", "value": value, "known": [slug for _, slug in known]},
        )
    return Q(gpu_model__slug__in=slugs)


def clause_q(clause: Clause) -> Q:
    """One clause as a database filter."""
    field, op, value = clause.field, clause.op, clause.value
    negate = op in ("!=", "notin")
    if field == "gpu_name":
        values = value if isinstance(value, tuple) else (value,)
        q = Q()
        for item in values:
            q |= _gpu_name_q(item)
        return ~q if negate else q
    if field in ("region", "country"):
        values = value if isinstance(value, tuple) else (value,)
        q = Q(**{f"{field}__in": list(values)})
        return ~q if negate else q
    if field == "verified":
        q = Q(verified=value)
        return ~q if negate else q
    if field == "tier":
        column = "tier_rank"
        converted: Any = tuple(tier_rank(v) for v in value) if isinstance(value, tuple) else tier_rank(value)
    else:
        column = _NUMERIC_COLUMNS[field]
        converted = tuple(_db_value(field, v) for v in value) if isinstance(value, tuple) else _db_value(field, value)
    if op in ("in", "notin"):
        q = Q(**{f"{column}__in": list(converted)})
    elif op == "!=":
        q = Q(**{column: converted})
    else:
        q = Q(**{f"{column}__{_LOOKUP[op]}": converted})
    if negate:
        # A NULL column (no benchmark yet) is "not equal" to any value.
        return ~q | Q(**{f"{column}__isnull": True})
    return q


def apply_clauses(qs: QuerySet[Node], clauses: list[Clause]) -> QuerySet[Node]:
    for clause in clauses:
        qs = qs.filter(clause_q(clause))
    return qs


def order_offers(qs: QuerySet[Node], *, field: str, descending: bool) -> QuerySet[Node]:
    column = ORDER_COLUMNS[field]
    expr = F(column).desc(nulls_last=True) if descending else F(column).asc(nulls_last=True)
    tie = F("price_micros").asc()
    return qs.order_by(expr, tie, "id")


def offer_from_node(node: Node) -> Offer:
    gpu = node.gpu_model
    dpd = getattr(node, "dlperf_per_dollar", None)
    return Offer(
        node_id=node.pk,
        node_name=node.name,
        gpu_name=gpu.name,
        gpu_slug=gpu.slug,
        num_gpus=int(getattr(node, "free_gpus", node.gpu_count)),
        total_gpus=node.gpu_count,
        gpu_ram=gpu.vram_gb,
        compute_cap=gpu.compute_capability,
        tier=gpu.tier,
        region=node.region,
        country=node.country,
        reliability=reliability_public(node.reliability) or 0.0,
        verified=node.verified,
        price=from_micros(micros=node.price_micros),
        min_bid=from_micros(micros=node.min_bid_micros),
        dlperf=node.dlperf,
        dlperf_per_dollar=round(dpd, 4) if dpd is not None else None,
        inet_down=node.inet_down_mbps,
        inet_up=node.inet_up_mbps,
        cpu_cores=int(getattr(node, "free_cpu", node.cpu_cores)),
        ram=int(getattr(node, "free_ram", node.ram_gb)),
        disk=int(getattr(node, "free_disk", node.disk_gb)),
        available_until=node.available_until,
        storage_price=from_micros(micros=node.storage_price_micros),
        egress_price=from_micros(micros=node.egress_price_micros),
    )


def offer_search(*, q: str = "", order: str | None = None, limit: int = 100) -> list[Offer]:
    """Offers matching query `q` (see offer_query), ordered by `order` (`-field` descending; default price)."""
    clauses = parse_offer_query(q=q or "")
    field, descending = parse_offer_order(order=order)
    limit = max(1, min(int(limit), MAX_LIMIT))
    qs = order_offers(apply_clauses(available_offers(), clauses), field=field, descending=descending)
    return [offer_from_node(node) for node in qs[:limit]]


def offer_count(*, q: str = "") -> int:
    clauses = parse_offer_query(q=q or "")
    return apply_clauses(available_offers(), clauses).count()
