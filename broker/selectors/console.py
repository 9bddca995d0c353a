"""Reads for the admin matching console (/console/): the queue, supply, match rounds, a job's
explanation and its manual-assignment candidates, nodes.

The manual-assignment check (`job_assignment_check`, `job_assignment_candidates`) reuses the
matching engine itself: the same snapshot the match round takes (`snapshot_take`), the engine's
hard-constraint filter (`broker.engine.filter.feasible`) and its first-failing-constraint rule
(`first_reasons`), on the job's row against one node or all candidate nodes. Nothing here
re-implements a constraint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from broker import engine
from broker.engine.filter import feasible, first_reasons
from broker.jobspec import JobSpec
from broker.models import Job, JobEvent, JobMode, JobState, Lease, MatchRound
from broker.services.explain import job_explanation_text
from broker.services.leases import HOLDING_STATES
from broker.services.matching import REASON_TEXT, Snapshot, matching_paused, snapshot_take
from common.errors import Conflict, NotFound
from common.models import AuditLog
from marketplace.models import TIER_RANK, Node, NodeStatus, Tier

QUEUE_LIMIT = 200
NODE_LIMIT = 500
CANDIDATE_LIMIT = 100

# What a reason code means for ONE node (the engine's REASON_TEXT speaks of the whole market).
NODE_REASON_TEXT = {
    "no_node_with_gpu_count": "the node has fewer GPUs than the job needs",
    "gpu_model": "the node's GPU model is not one the job allows",
    "gpu_ram": "the node's GPUs have less memory than the job needs",
    "compute_capability": "the node's GPUs are below the job's minimum compute capability",
    "tier": "the node's GPU tier is below the job's minimum tier",
    "region": "the node is not in one of the job's regions",
    "verified": "the job asks for verified hardware and the node is not verified",
    "reliability": "the node's reliability is below the job's minimum",
    "inet": "the node's download bandwidth is below the job's minimum",
    "cpu": "the node has fewer CPU cores per GPU than the job needs",
    "ram": "the node has less RAM per GPU than the job needs",
    "disk": "the node has less disk per GPU than the job needs",
    "availability_window": "the node is not listed for the job's whole period",
    "price": "the node's price is above the job's price limit",
    "capacity": "the node's GPUs are leased for the job's period",
}


# --------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class QueueFilters:
    states: tuple[str, ...] = (JobState.PENDING,)
    mode: str = ""
    region: str = ""
    min_age_minutes: int | None = None
    customer: str = ""


@dataclass(frozen=True)
class QueueRow:
    job: Job
    age: timedelta
    explanation: str


def _region_filter(qs: QuerySet[Job], region: str) -> QuerySet[Job] | list[Job]:
    """Jobs that may run in `region` (they list it, or set no region)."""
    if connection.vendor == "postgresql":
        return qs.filter(Q(regions__contains=[region]) | Q(regions=[]))
    return [job for job in qs if not job.regions or region in job.regions]  # SQLite: no JSON containment


def queue_list(*, filters: QueueFilters, now: datetime | None = None, limit: int = QUEUE_LIMIT) -> list[QueueRow]:
    """Jobs in the queue (pending by default), oldest first, with their age and stored explanation."""
    now = now or timezone.now()
    qs = Job.objects.select_related("customer", "customer__user").filter(state__in=list(filters.states))
    if filters.mode:
        qs = qs.filter(mode=filters.mode)
    if filters.min_age_minutes:
        qs = qs.filter(created_at__lte=now - timedelta(minutes=filters.min_age_minutes))
    if filters.customer:
        term = filters.customer.strip()
        if term.isdigit():  # a customer id
            qs = qs.filter(customer_id=int(term))
        else:
            qs = qs.filter(Q(customer__company__icontains=term) | Q(customer__user__username__icontains=term))
    qs = qs.order_by("created_at", "pk")
    jobs: QuerySet[Job] | list[Job] = _region_filter(qs, filters.region) if filters.region else qs
    return [
        QueueRow(job=job, age=now - job.created_at, explanation=_stored_explanation(job)) for job in list(jobs[:limit])
    ]


def queue_counts() -> dict[str, int]:
    """Jobs per state (all states), for the dashboard's cards."""
    counts = dict(Job.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    return {state.value: int(counts.get(state.value, 0)) for state in JobState}


def _stored_explanation(job: Job) -> str:
    if job.state not in (JobState.PENDING, JobState.PREEMPTED):
        return ""
    return job.pending_reason or "Not considered by a match round yet."


def job_explanation(*, job: Job) -> str:
    """Why a pending job is not placed (see broker.services.explain.job_explanation_text)."""
    return job_explanation_text(job=job)


# --------------------------------------------------------------------------- supply


@dataclass
class SupplyRow:
    tier: str
    region: str
    nodes: int = 0
    nodes_online: int = 0
    gpus_online: int = 0
    leased: int = 0
    free: int = 0

    @property
    def utilisation(self) -> float:
        return self.leased / self.gpus_online if self.gpus_online else 0.0

    @property
    def tier_label(self) -> str:
        return Tier(self.tier).label if self.tier in Tier.values else self.tier


@dataclass
class Supply:
    rows: list[SupplyRow]
    total: SupplyRow


def supply_by_tier_region(*, now: datetime | None = None) -> Supply:
    """Per (GPU tier, region): nodes (all / online), GPUs on online nodes, GPUs leased now, GPUs free
    to sell now (online, listed, not cordoned, not leased), utilisation = leased / online GPUs."""
    now = now or timezone.now()
    online = Q(status=NodeStatus.ONLINE)
    sellable = Q(status=NodeStatus.ONLINE, listed=True, cordoned=False)
    node_rows = Node.objects.values("gpu_model__tier", "region").annotate(
        n=Count("id"),
        n_online=Count("id", filter=online),
        gpus_online=Sum("gpu_count", filter=online),
        gpus_sellable=Sum("gpu_count", filter=sellable),
    )
    held = Lease.objects.filter(
        state__in=HOLDING_STATES, starts_at__lte=now, ends_at__gt=now, node__status=NodeStatus.ONLINE
    )
    slot_rows = held.values("node__gpu_model__tier", "node__region").annotate(
        leased=Sum("gpu_count"),
        leased_sellable=Sum("gpu_count", filter=Q(node__listed=True, node__cordoned=False)),
    )
    rows: dict[tuple[str, str], SupplyRow] = {}
    sellable_gpus: dict[tuple[str, str], int] = {}
    for r in node_rows:
        key = (r["gpu_model__tier"], r["region"])
        rows[key] = SupplyRow(
            tier=key[0], region=key[1], nodes=r["n"], nodes_online=r["n_online"], gpus_online=r["gpus_online"] or 0
        )
        sellable_gpus[key] = r["gpus_sellable"] or 0
    for held_row in slot_rows:
        key = (held_row["node__gpu_model__tier"], held_row["node__region"])
        row = rows.setdefault(key, SupplyRow(tier=key[0], region=key[1]))
        row.leased = held_row["leased"] or 0
        sellable_gpus[key] = sellable_gpus.get(key, 0) - (held_row["leased_sellable"] or 0)
    for key, row in rows.items():
        row.free = max(0, sellable_gpus.get(key, 0))
    ordered = sorted(rows.values(), key=lambda r: (-TIER_RANK.get(r.tier, 0), r.region))  # type: ignore[call-overload]
    total = SupplyRow(tier="all", region="all")
    for row in ordered:
        total.nodes += row.nodes
        total.nodes_online += row.nodes_online
        total.gpus_online += row.gpus_online
        total.leased += row.leased
        total.free += row.free
    return Supply(rows=ordered, total=total)


# --------------------------------------------------------------------------- match rounds


def rounds_recent(*, limit: int = 20) -> list[MatchRound]:
    return list(MatchRound.objects.order_by("-started_at", "-id")[:limit])


def round_get(*, round_id: int) -> MatchRound:
    rnd = MatchRound.objects.filter(pk=round_id).first()
    if rnd is None:
        raise NotFound("No such match round.")
    return rnd


def reasons_histogram(*, rounds: list[MatchRound]) -> list[tuple[str, int, str]]:
    """(reason code, jobs, meaning) summed over `rounds`, most frequent first."""
    totals: dict[str, int] = {}
    for rnd in rounds:
        for code, n in (rnd.unplaced_reasons or {}).items():
            totals[code] = totals.get(code, 0) + int(n)
    return [
        (code, n, REASON_TEXT.get(code, code)) for code, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def matching_status() -> dict[str, Any]:
    last = MatchRound.objects.order_by("-started_at", "-id").first()
    return {"paused": matching_paused(), "last_round": last}


# --------------------------------------------------------------------------- jobs


def job_get_for_staff(*, job_id: int) -> Job:
    """Any job (staff see every tenant), with customer, models, timeline and leases."""
    job = (
        Job.objects.select_related("customer", "customer__user")
        .prefetch_related(
            "gpu_models",
            Prefetch("events", queryset=JobEvent.objects.order_by("at", "id")),
            Prefetch(
                "leases",
                queryset=Lease.objects.select_related("node", "node__gpu_model").order_by("-created_at", "-id"),
            ),
        )
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        raise NotFound("No such job.")
    return job


def job_requirements(*, job: Job) -> list[tuple[str, str]]:
    """The job's requirements and terms as (label, value) for display (JobSpec's labels); unset ones are left
    out."""
    return [
        *JobSpec.from_job(job).rows("requirements", "terms"),
        ("Retries", f"{job.retries} of {job.max_retries}"),
    ]


# --------------------------------------------------------------------------- manual assignment check


@dataclass
class AssignmentCheck:
    """Can `job` go on `node` now? `blocker` refuses it outright (no override: the node cannot take
    new leases, or has too few free GPUs); `violation` is a hard constraint the job sets that the
    node fails (a staff override may accept it)."""

    job_id: int
    node_id: int
    node_name: str
    blocker: str = ""
    violation_code: str = ""
    violation: str = ""
    slots: list[int] = field(default_factory=list)
    price_micros: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    free_gpus: int = 0

    @property
    def fits(self) -> bool:
        return not self.blocker and not self.violation


def _node_rows(nodes: engine.Nodes, idx: np.ndarray) -> engine.Nodes:
    rows: dict[str, Any] = {}
    for name in nodes.__dataclass_fields__:
        col = getattr(nodes, name)
        rows[name] = None if col is None else col[idx]
    return engine.Nodes(**rows)


def _job_row(jobs: engine.Jobs, j: int) -> engine.Jobs:
    rows = np.array([j])
    return engine.Jobs(**{name: getattr(jobs, name)[rows] for name in jobs.__dataclass_fields__})


def _node_blocker(node: Node) -> str:
    if node.status != NodeStatus.ONLINE:
        return f"Node {node.name} is {node.get_status_display().lower()}; it cannot start a lease."
    if node.cordoned:
        return f"Node {node.name} is cordoned (no new leases); uncordon it first."
    if not node.listed:
        return f"Node {node.name} is not listed by its provider."
    return ""


def _assignment_terms(snap: Snapshot, j: int, n: int) -> tuple[float, float, int]:
    """Start, end (epoch seconds) and price per GPU-hour as the engine would set them."""
    now = snap.now.timestamp()
    start = max(float(snap.jobs.start[j]), now)
    end = start + float(snap.jobs.end[j] - snap.jobs.start[j])
    limit = float(snap.jobs.price_limit[j])
    if snap.jobs.mode[j] == engine.MODE_INTERRUPTIBLE:
        price = int(limit)  # interruptible jobs pay their bid
    else:
        ask = float(snap.nodes.ask[n])
        price = int(min(ask, limit)) if np.isfinite(limit) else int(ask)  # never above the customer's limit
    return start, end, price


def _resources_short(snap: Snapshot, j: int, n: int) -> str:
    """'4 CPU cores (the job needs 8)'-style text for each consumable the node lacks; empty when all fit."""
    need = snap.jobs.resources_need()[:, j]
    free = snap.nodes.resources_free()[:, n]
    units = ("CPU cores", "GB RAM", "GB disk")
    return ", ".join(f"{free[k]:g} {units[k]} (the job needs {need[k]:g})" for k in range(3) if need[k] > free[k])


def _check_in_snapshot(snap: Snapshot, j: int, n: int, node: Node) -> AssignmentCheck:
    check = AssignmentCheck(job_id=snap.job_ids[j], node_id=node.pk, node_name=node.name)
    start, end, price = _assignment_terms(snap, j, n)
    one_job = _job_row(snap.jobs, j)
    one_node = _node_rows(snap.nodes, np.array([n]))
    nowf = snap.now.timestamp()
    if not feasible(one_job, one_node, snap.models, now=nowf, with_capacity=False)[0, 0]:
        code = first_reasons(one_job, one_node, snap.models, np.array([0]), now=nowf)[0]
        check.violation_code = code
        check.violation = NODE_REASON_TEXT.get(code, REASON_TEXT.get(code, code))
    free = np.flatnonzero(snap.nodes.slot_free_at[n] <= start)
    check.free_gpus = len(free)
    need = int(snap.jobs.gpu_count[j])
    if need > int(snap.nodes.gpu_count[n]):
        check.blocker = f"Node {node.name} has {int(snap.nodes.gpu_count[n])} GPUs; the job needs {need} on one node."
    elif len(free) < need:
        check.blocker = (
            f"Node {node.name} has {len(free)} GPU(s) free from the job's start; the job needs {need}. "
            "A GPU is never leased twice, override or not."
        )
    elif short := _resources_short(snap, j, n):
        check.blocker = f"Node {node.name} has {short} free; a node's CPU, RAM and disk are never overcommitted."
    else:
        check.slots = [int(s) for s in free[:need]]
    check.price_micros = price
    check.starts_at = datetime.fromtimestamp(start, tz=UTC)
    check.ends_at = datetime.fromtimestamp(end, tz=UTC)
    return check


def _snapshot_for(job: Job, now: datetime | None) -> tuple[Snapshot, int]:
    if job.state != JobState.PENDING:
        raise Conflict(f"Job {job.pk} is {job.get_state_display().lower()}; only pending jobs can be assigned.")
    snap = snapshot_take(now=now or timezone.now(), job_ids=[job.pk])
    if job.pk not in snap.job_ids:
        raise Conflict(f"Job {job.pk} is no longer pending; only pending jobs can be assigned.")
    return snap, snap.job_ids.index(job.pk)


def job_assignment_check(*, job: Job, node: Node, now: datetime | None = None) -> AssignmentCheck:
    """Check placing pending `job` on `node` now, with the engine's own hard-constraint filter, and
    pick the node's lowest free GPU slots for the job's period."""
    blocker = _node_blocker(node)
    if blocker:
        return AssignmentCheck(job_id=job.pk, node_id=node.pk, node_name=node.name, blocker=blocker)
    snap, j = _snapshot_for(job, now)
    if node.pk not in snap.node_ids:  # changed since it was read
        return AssignmentCheck(
            job_id=job.pk, node_id=node.pk, node_name=node.name, blocker="Node cannot be leased now."
        )
    return _check_in_snapshot(snap, j, snap.node_ids.index(node.pk), node)


def job_assignment_candidates(
    *, job: Job, now: datetime | None = None, limit: int = CANDIDATE_LIMIT
) -> list[AssignmentCheck]:
    """Nodes staff may assign `job` to (online, listed, not cordoned), those meeting every hard
    constraint with enough free GPUs first, then by price; each with its check."""
    if job.state != JobState.PENDING:
        return []
    snap, j = _snapshot_for(job, now)
    if not snap.node_ids:
        return []
    nowf = snap.now.timestamp()
    ok = feasible(_job_row(snap.jobs, j), snap.nodes, snap.models, now=nowf, with_capacity=False)[0]
    order = np.lexsort((snap.nodes.ask, ~ok))[:limit]
    nodes = Node.objects.in_bulk([snap.node_ids[int(n)] for n in order])
    checks = [_check_in_snapshot(snap, j, int(n), nodes[snap.node_ids[int(n)]]) for n in order]
    checks.sort(key=lambda c: (not c.fits, bool(c.blocker), c.price_micros))
    return checks


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class NodeFilters:
    status: str = ""
    verified: str = ""  # "yes" / "no" / ""
    cordoned: str = ""
    mismatch: str = ""
    q: str = ""


def _yes_no(qs: QuerySet[Node, Any], value: str, q: Q) -> QuerySet[Node, Any]:
    if value == "yes":
        return qs.filter(q)
    if value == "no":
        return qs.exclude(q)
    return qs


def node_list_for_staff(*, filters: NodeFilters, limit: int = NODE_LIMIT) -> list[Node]:
    """Every provider's nodes with status, verification, cordon, mismatch, benchmark flag, reliability,
    and `holding` = leases reserved or active on each."""
    qs: QuerySet[Node, Any] = Node.objects.select_related("gpu_model", "provider").annotate(
        holding=Count("leases", filter=Q(leases__state__in=HOLDING_STATES))
    )
    if filters.status:
        qs = qs.filter(status=filters.status)
    qs = _yes_no(qs, filters.verified, Q(verified=True))
    qs = _yes_no(qs, filters.cordoned, Q(cordoned=True))
    qs = _yes_no(qs, filters.mismatch, ~Q(hardware_mismatch=""))
    if filters.q:
        qs = qs.filter(Q(name__icontains=filters.q) | Q(provider__company__icontains=filters.q))
    return list(qs.order_by("pk")[:limit])


def node_get_for_staff(*, node_id: int) -> Node:
    node = Node.objects.select_related("gpu_model", "provider", "provider__user").filter(pk=node_id).first()
    if node is None:
        raise NotFound("No such node.")
    return node


def node_leases(*, node: Node, limit: int = 50) -> list[Lease]:
    """The node's leases, holding ones first, then the most recent."""
    leases = Lease.objects.filter(node=node).select_related("job", "job__customer").order_by("-created_at", "-id")
    holding = list(leases.filter(state__in=HOLDING_STATES))
    rest = list(leases.exclude(state__in=HOLDING_STATES)[: max(0, limit - len(holding))])
    return holding + rest


def node_audit(*, node: Node, limit: int = 20) -> list[AuditLog]:
    return list(AuditLog.objects.filter(target=f"node:{node.pk}").select_related("actor").order_by("-id")[:limit])


def job_audit(*, job: Job, limit: int = 20) -> list[AuditLog]:
    return list(AuditLog.objects.filter(target=f"job:{job.pk}").select_related("actor").order_by("-id")[:limit])


MODES = [(m.value, m.label) for m in JobMode]
