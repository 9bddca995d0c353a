"""Job requirements as node filters: turn a JobSpec (broker/jobspec.py) into queryset filters, and refuse
requirements that no listed hardware can ever meet (naming the market's maximum)."""

import math
from decimal import Decimal
from typing import Any, NoReturn

from django.db.models import Count, Max, Q, QuerySet

from broker.jobspec import JobSpec, Requirements
from broker.models import JobMode
from broker.selectors.offers import _tier_rank_expr, available_offers, offer_from_node
from common.errors import Conflict, ValidationFailed
from common.money import format_rate, to_micros
from marketplace.models import TIER_RANK, Node, Tier


class ImpossibleRequirement(ValidationFailed):
    code = "impossible_requirement"


def spec_hardware_q(spec: JobSpec) -> Q:
    """What the hardware must have (things that do not change while a node stays listed)."""
    req = spec.requirements
    q = Q()
    if req.min_gpu_ram is not None:
        q &= Q(gpu_model__vram_gb__gte=req.min_gpu_ram)
    if req.gpu_models:
        q &= Q(gpu_model__slug__in=req.gpu_models)
    if req.min_compute_cap is not None:
        q &= Q(gpu_model__compute_capability__gte=req.min_compute_cap)
    if req.min_tier:
        q &= Q(tier_rank__gte=TIER_RANK[Tier(req.min_tier)])
    if req.regions:
        q &= Q(region__in=req.regions)
    if req.min_inet_down is not None:
        q &= Q(inet_down_mbps__gte=req.min_inet_down)
    # CPU, RAM and disk are consumable node totals: a lease takes GPUs × the per-GPU minimum.
    g = req.gpu_count
    if req.min_cpu_cores_per_gpu:
        q &= Q(cpu_cores__gte=g * req.min_cpu_cores_per_gpu)
    if req.min_ram_gb_per_gpu:
        q &= Q(ram_gb__gte=g * req.min_ram_gb_per_gpu)
    if req.min_disk_gb_per_gpu:
        q &= Q(disk_gb__gte=g * req.min_disk_gb_per_gpu)
    return q


def spec_market_q(spec: JobSpec) -> Q:
    """Verification, reliability and price: things that can change over time."""
    req = spec.requirements
    q = Q()
    if req.verified_only:
        q &= Q(verified=True)
    if req.min_reliability is not None:
        q &= Q(reliability__gte=req.min_reliability)
    if spec.terms.mode == JobMode.INTERRUPTIBLE:
        if spec.terms.bid_micros is not None:
            q &= Q(min_bid_micros__lte=spec.terms.bid_micros)
    elif spec.terms.max_price_micros is not None:
        q &= Q(price_micros__lte=spec.terms.max_price_micros)
    return q


def pinned_node_check(*, spec: JobSpec) -> None:
    """A booking made from an offer (`node`): the node must still be listed, meet the requirements, ask at
    most the max price and have the GPUs, CPU, RAM and disk free now. Otherwise Conflict (409,
    `node_taken`) says why and lists the next offers at the same or a lower price; never a dearer one."""
    node_id = spec.requirements.node_id
    if node_id is None:
        return
    req = spec.requirements
    fits = spec_hardware_q(spec) & spec_market_q(spec)
    reserved = spec.terms.mode == JobMode.RESERVED  # starts later: free capacity is the round's business
    if reserved and _listed_hardware().filter(fits, pk=node_id).exists():
        return
    fits &= Q(free_gpus__gte=req.gpu_count)
    for column, per_gpu in (
        ("free_cpu", req.min_cpu_cores_per_gpu),
        ("free_ram", req.min_ram_gb_per_gpu),
        ("free_disk", req.min_disk_gb_per_gpu),
    ):
        if per_gpu:
            fits &= Q(**{f"{column}__gte": per_gpu * req.gpu_count})
    offers = available_offers()
    if offers.filter(fits, pk=node_id).exists():
        return
    node = Node.objects.filter(pk=node_id).first()
    price = node.price_micros if node is not None else (spec.terms.max_price_micros or 0)
    if spec.terms.max_price_micros is not None:
        price = min(price, spec.terms.max_price_micros)
    alternatives = [
        offer_from_node(n)
        for n in offers.filter(fits, price_micros__lte=price).exclude(pk=node_id).order_by("price_micros", "pk")[:5]
    ]
    why = _pinned_why(node=node, spec=spec)
    if alternatives:
        best = alternatives[0]
        nxt = (
            f" The next offer at the same or a lower price: node {best.node_id} "
            f"({best.gpu_name}, {format_rate(micros=to_micros(amount=best.price), unit='GPU-hour')})."
        )
    else:
        nxt = " No other offer that fits is at the same or a lower price right now."
    raise Conflict(
        f"Node {node_id} {why}.{nxt} Nothing was booked.",
        code="node_taken",
        details={
            "node": node_id,
            "alternatives": [
                {"node": o.node_id, "gpu_name": o.gpu_name, "price": str(o.price), "num_gpus": o.num_gpus}
                for o in alternatives
            ],
        },
    )


def _pinned_why(*, node: Node | None, spec: JobSpec) -> str:
    if node is None or not node.listed:
        return "is no longer listed"
    if spec.terms.max_price_micros is not None and node.price_micros > spec.terms.max_price_micros:
        return "asks more than your max price"
    if node.gpu_count < spec.requirements.gpu_count:
        return f"has {node.gpu_count} GPUs; you asked for {spec.requirements.gpu_count}"
    return "was taken meanwhile or no longer meets your requirements (not enough GPUs, CPU, RAM or disk free now)"


def _listed_hardware() -> QuerySet[Node]:
    """Listed nodes with the one annotation the hardware filters use (tier_rank); building the full offer
    annotations (free GPUs, performance per dollar) cost a third of a booking's CPU for nothing."""
    return Node.objects.filter(listed=True).annotate(tier_rank=_tier_rank_expr())


def _refuse(requirement: str, message: str, maximum: Any) -> NoReturn:
    raise ImpossibleRequirement(message, details={"requirement": requirement, "market_max": str(maximum)})


def _market_top(spec: JobSpec, listed: QuerySet[Node]) -> dict[str, Any]:
    """One aggregate query: the market's maxima, models and regions listed, the largest node meeting all together."""
    req = spec.requirements
    aggregates: dict[str, Any] = {
        "gpus": Max("gpu_count"),
        "vram": Max("gpu_model__vram_gb"),
        "cc": Max("gpu_model__compute_capability"),
        "tier": Max("tier_rank"),
        "inet": Max("inet_down_mbps"),
        "cpu": Max("cpu_cores"),
        "ram": Max("ram_gb"),
        "disk": Max("disk_gb"),
        "together": Max("gpu_count", filter=spec_hardware_q(spec)),
    }
    if req.gpu_models:
        aggregates["models_listed"] = Count("pk", filter=Q(gpu_model__slug__in=req.gpu_models))
    if req.regions:
        aggregates["in_regions"] = Count("pk", filter=Q(region__in=req.regions))
    return listed.aggregate(**aggregates)


def _refuse_beyond_maxima(req: Requirements, top: dict[str, Any]) -> None:
    """GPU count, GPU memory, compute capability, tier and bandwidth against the market's best."""
    if req.gpu_count > top["gpus"]:
        _refuse("gpu_count", f"gpu_count {req.gpu_count} exceeds the largest node ({top['gpus']} GPUs).", top["gpus"])
    if req.min_gpu_ram is not None and req.min_gpu_ram > top["vram"]:
        _refuse(
            "min_gpu_ram",
            f"min_gpu_ram {_num(req.min_gpu_ram)} exceeds the largest GPU ({_num(top['vram'])} GB).",
            _num(top["vram"]),
        )
    if req.min_compute_cap is not None and (top["cc"] is None or req.min_compute_cap > top["cc"]):
        _refuse(
            "min_compute_cap",
            f"min_compute_cap {req.min_compute_cap} exceeds the highest listed compute capability ({top['cc']}).",
            top["cc"],
        )
    if req.min_tier and TIER_RANK[Tier(req.min_tier)] > (top["tier"] or 0):
        best = next((t.value for t, r in TIER_RANK.items() if r == top["tier"]), "unsuitable")
        _refuse("min_tier", f"min_tier {req.min_tier} exceeds the best listed tier ({best}).", best)
    if req.min_inet_down is not None and req.min_inet_down > top["inet"]:
        _refuse(
            "min_inet_down",
            f"min_inet_down {req.min_inet_down} exceeds the fastest listed node ({top['inet']} Mbit/s).",
            top["inet"],
        )


def _refuse_per_gpu(req: Requirements, top: dict[str, Any]) -> None:
    """CPU cores, RAM and disk per GPU against the most any listed node offers."""
    for name, key, unit in (
        ("min_cpu_cores_per_gpu", "cpu", "CPU cores"),
        ("min_ram_gb_per_gpu", "ram", "GB RAM"),
        ("min_disk_gb_per_gpu", "disk", "GB disk"),
    ):
        wanted = getattr(req, name)
        if wanted and wanted * req.gpu_count > (top[key] or 0):
            most = math.floor(top[key] or 0)
            _refuse(
                name,
                f"{name} {wanted} × {req.gpu_count} GPU(s) = {wanted * req.gpu_count} {unit} exceeds the most "
                f"any listed node has ({most} {unit}).",
                most,
            )


def _refuse_unlisted(req: Requirements, top: dict[str, Any], listed: QuerySet[Node]) -> None:
    """Models or regions of which nothing is listed (naming what is)."""
    if req.gpu_models and not top["models_listed"]:
        available = sorted(set(listed.values_list("gpu_model__slug", flat=True)))
        _refuse(
            "gpu_models",
            f"None of gpu_models {', '.join(req.gpu_models)} is listed; listed models: {', '.join(available)}.",
            ", ".join(available),
        )
    if req.regions and not top["in_regions"]:
        available = sorted(set(listed.values_list("region", flat=True)))
        _refuse(
            "regions",
            f"No node is listed in regions {', '.join(req.regions)}; listed regions: {', '.join(available)}.",
            ", ".join(available),
        )


def _refuse_combination(req: Requirements, top: dict[str, Any]) -> None:
    """Each requirement alone is possible; together?"""
    together = top["together"]
    if together is None:
        raise ImpossibleRequirement(
            "No listed node meets all the hardware requirements together "
            "(GPU memory, models, compute capability, tier, regions, bandwidth, per-GPU CPU/RAM/disk).",
            details={"requirement": "combination"},
        )
    if req.gpu_count > together:
        _refuse(
            "gpu_count",
            f"gpu_count {req.gpu_count} exceeds the largest node meeting the other requirements ({together} GPUs).",
            together,
        )


def requirements_check_possible(*, spec: JobSpec) -> None:
    """Raise ImpossibleRequirement (400) when no listed node could ever meet the hardware requirements,
    naming the requirement and the market's maximum.

    One aggregate query on the booking path (maxima, models and regions listed, the largest node meeting all
    requirements together); the lists of what is available are read only when refusing."""
    req = spec.requirements
    listed = _listed_hardware()
    top = _market_top(spec, listed)
    if top["gpus"] is None:
        raise ImpossibleRequirement(
            "No hardware is listed on the market yet, so no requirement can be met.", details={"requirement": None}
        )
    _refuse_beyond_maxima(req, top)
    _refuse_per_gpu(req, top)
    _refuse_unlisted(req, top, listed)
    _refuse_combination(req, top)


def _num(value: Decimal | None) -> str:
    if value is None:
        return "none"
    return format(value.normalize(), "f")
