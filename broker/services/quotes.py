"""Quotes: what a booking would match, cost and hold, before the customer commits."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from broker.jobspec import JobSpec
from broker.models import JobMode, Lease
from broker.selectors.offers import (
    HOLDING_LEASE_STATES,
    Offer,
    annotated_nodes,
    available_offers,
    listed_now,
    offer_from_node,
)
from broker.selectors.requirements import requirements_check_possible, spec_hardware_q, spec_market_q
from common.money import from_micros
from marketplace.models import Customer, Node

CHEAPEST = 5
MAX_START_CANDIDATES = 500


@dataclass(frozen=True)
class Quote:
    matching_nodes: int
    price_min: Decimal | None  # dollars per GPU-hour (the bid floor for interruptible jobs)
    price_max: Decimal | None
    cheapest: list[Offer]
    estimated_start: datetime | None
    estimated_start_reason: str
    max_cost_micros: int | None
    spec: JobSpec

    @property
    def max_cost(self) -> Decimal | None:
        return None if self.max_cost_micros is None else from_micros(micros=self.max_cost_micros)


def _price_column(spec: JobSpec) -> str:
    return "min_bid_micros" if spec.terms.mode == JobMode.INTERRUPTIBLE else "price_micros"


def matching_offers(*, spec: JobSpec) -> QuerySet[Node]:
    """Nodes that could take the job now: listed, online, enough free GPUs, every requirement met."""
    return (
        available_offers()
        .filter(spec_hardware_q(spec))
        .filter(spec_market_q(spec))
        .filter(Q(free_gpus__gte=spec.requirements.gpu_count))
    )


def _earliest_start(*, spec: JobSpec, now: datetime) -> tuple[datetime | None, str]:
    """When enough GPUs free up on some suitable node: the earliest lease end that frees them."""
    candidates = list(
        annotated_nodes(at=now)
        .filter(listed_now(at=now))
        .filter(spec_hardware_q(spec))
        .filter(spec_market_q(spec))
        .filter(gpu_count__gte=spec.requirements.gpu_count)
        .values_list("pk", "gpu_count")[:MAX_START_CANDIDATES]
    )
    if not candidates:
        return None, (
            "No online node meets these requirements at this price right now; "
            "the job would wait for a suitable node to be listed or come online, or for prices to fall."
        )
    sizes = dict(candidates)
    leases: dict[int, list[tuple[datetime, datetime, int]]] = {}
    for node_id, starts, ends, gpus in Lease.objects.filter(
        node_id__in=sizes, state__in=HOLDING_LEASE_STATES, ends_at__gt=now
    ).values_list("node_id", "starts_at", "ends_at", "gpu_count"):
        leases.setdefault(node_id, []).append((starts, ends, gpus))
    best: datetime | None = None
    for node_id, size in sizes.items():
        node_leases = leases.get(node_id, [])
        for t in sorted({now, *(ends for _, ends, _ in node_leases)}):
            held = sum(g for s, e, g in node_leases if s <= t < e)
            if size - held >= spec.requirements.gpu_count:
                if best is None or t < best:
                    best = t
                break
    if best is None:  # pragma: no cover - every lease ends, so some time always frees the node
        return None, "No suitable node frees enough GPUs."
    return best, f"{len(sizes)} suitable node(s) are busy; the earliest frees enough GPUs when its lease ends."


def quote_for_spec(*, spec: JobSpec) -> Quote:
    requirements_check_possible(spec=spec)
    now = timezone.now()
    qs = matching_offers(spec=spec)
    column = _price_column(spec)
    agg = qs.aggregate(n=Count("pk"), lo=Min(column), hi=Max(column))
    count = int(agg["n"] or 0)
    cheapest = [offer_from_node(node) for node in qs.order_by(column, "-reliability", "pk")[:CHEAPEST]]
    start: datetime | None
    if count:
        start, reason = now, f"{count} node(s) can start the job now."
    else:
        start, reason = _earliest_start(spec=spec, now=now)
    terms = spec.terms
    if terms.mode == JobMode.RESERVED and terms.earliest_start is not None and start is not None:
        if start < terms.earliest_start:
            start, reason = terms.earliest_start, "The reservation starts at the beginning of its window."
        elif terms.latest_start is not None and start > terms.latest_start:
            start, reason = None, "No suitable node frees enough GPUs inside the start window."
    return Quote(
        matching_nodes=count,
        price_min=None if agg["lo"] is None else from_micros(micros=agg["lo"]),
        price_max=None if agg["hi"] is None else from_micros(micros=agg["hi"]),
        cheapest=cheapest,
        estimated_start=start,
        estimated_start_reason=reason,
        max_cost_micros=spec.max_cost_micros,
        spec=spec,
    )


def job_quote(*, customer: Customer, requirements: JobSpec | Mapping[str, Any]) -> Quote:
    """Quote a booking for `customer`: matching nodes now, price range, cheapest offers, estimated start
    and the maximum cost the booking would hold. `requirements`: a JobSpec (its workload is ignored), or the
    flat payload JobSpec.from_payload parses as a quote. Impossible requirements raise a 400 naming the market max.
    """
    spec = requirements if isinstance(requirements, JobSpec) else JobSpec.from_payload(requirements, booking=False)
    return quote_for_spec(spec=spec)
