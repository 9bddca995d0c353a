"""Reserved capacity: a customer books N GPUs of a model or tier on one provider node for a term.

The reservation is a financing ReservedContract row on the chosen node for [starts_at, ends_at): those GPUs are
taken out of the node's free capacity for the term (`reserved_gpus_on`; the matching snapshot holds them, see
broker/services/matching.py). The node is chosen among listed, verified, online, uncordoned nodes of the model
(or of a model of at least the tier) with enough unreserved GPUs: cheapest first, then most reliable. The money
(discount, monthly charge from the wallet) is financing's: financing/services/reserved.py.
"""

from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from common.errors import Conflict, ValidationFailed
from financing.models import ReservedContract, ReservedContractStatus
from financing.services.reserved import MAX_TERM_MONTHS, reserved_contract_open
from marketplace.models import TIER_RANK, GPUModel, Node, NodeStatus, Tier


def reserved_holds(*, node_ids: list[int], now: datetime) -> list[tuple[int, int, datetime]]:
    """(node id, GPUs, term end) of active reserved contracts within their term on these nodes."""
    if not node_ids:
        return []
    return list(
        ReservedContract.objects.filter(
            node_id__in=node_ids, status=ReservedContractStatus.ACTIVE, starts_at__lte=now, ends_at__gt=now
        )
        .order_by("node_id", "pk")
        .values_list("node_id", "gpu_count", "ends_at")
    )


def reserved_gpus_on(*, node_ids: list[int]) -> dict[int, int]:
    """GPUs held by active reserved contracts (now within their term), per node."""
    now = timezone.now()
    rows = (
        ReservedContract.objects.filter(
            node_id__in=node_ids, status=ReservedContractStatus.ACTIVE, starts_at__lte=now, ends_at__gt=now
        )
        .values("node_id")
        .annotate(n=Sum("gpu_count"))
    )
    return {r["node_id"]: r["n"] for r in rows}


def reserved_contract_book(
    *,
    customer_user: User,
    gpu_count: int,
    term_months: int,
    gpu_model_slug: str | None = None,
    tier: str | None = None,
) -> ReservedContract:
    """Pick a node with enough unreserved GPUs and book the contract (month 1 charged from the wallet)."""
    if not hasattr(customer_user, "customer"):
        raise ValidationFailed("Only customers book reserved capacity.")
    if isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or gpu_count < 1:
        raise ValidationFailed("gpu_count: at least 1")
    if isinstance(term_months, bool) or not isinstance(term_months, int) or not 1 <= term_months <= MAX_TERM_MONTHS:
        raise ValidationFailed(f"term_months: between 1 and {MAX_TERM_MONTHS}")
    nodes = Node.objects.filter(
        listed=True, verified=True, cordoned=False, status=NodeStatus.ONLINE, price_micros__gt=0
    )
    if gpu_model_slug:
        model = GPUModel.objects.filter(slug=gpu_model_slug).first()
        if model is None:
            raise ValidationFailed(f"gpu_model: unknown GPU model {gpu_model_slug!r}")
        nodes = nodes.filter(gpu_model=model)
    elif tier:
        if tier not in Tier.values or tier == Tier.UNSUITABLE:
            raise ValidationFailed(f"tier: one of training, fine_tuning, inference (got {tier!r})")
        nodes = nodes.filter(gpu_model__tier__in=[t for t, r in TIER_RANK.items() if r >= TIER_RANK[Tier(tier)]])
    else:
        raise ValidationFailed("give gpu_model or tier")
    with transaction.atomic():
        candidates = list(
            nodes.select_for_update(of=("self",)).select_related("gpu_model", "provider__user").order_by("pk")
        )
        held = reserved_gpus_on(node_ids=[n.pk for n in candidates])
        fitting = [n for n in candidates if n.gpu_count - held.get(n.pk, 0) >= gpu_count]
        if not fitting:
            raise Conflict(f"No listed, verified, online node has {gpu_count} unreserved GPUs of that kind.")
        node = min(fitting, key=lambda n: (n.price_micros, -n.reliability, n.pk))
        return reserved_contract_open(
            customer_user=customer_user,
            node=node,
            gpu_model=node.gpu_model,
            gpu_count=gpu_count,
            term_months=term_months,
            list_price_micros=node.price_micros,
        )
