"""Staff actions of the admin matching console: manual assignment, cordon / uncordon / drain a node,
pause / resume matching, run a round now. Each is audit-logged (common.services.audit_log).

- Manual assignment is checked with the matching engine's own hard-constraint filter
  (broker.selectors.console.job_assignment_check). A violated constraint refuses it unless staff
  override with a reason (action `job.assign_override` in the audit log). What no override can
  lift: the node must be online, listed and not cordoned, and must have enough GPU slots free for
  the job's whole period — the lease goes through `lease_create`, and the database/lease service
  never lets a GPU be leased twice. The price is what the engine would charge (on-demand: the
  node's ask; interruptible: the bid), never above the customer's price limit (an overridden
  price constraint leases at the customer's limit).
- Cordon: `Node.cordoned` → the matcher and the offer search skip the node; existing leases run on.
- Drain: cordon, then by default let the node's leases run to their end (they expire through
  `leases_expire`); with `end_leases=True` every reserved/active lease fails over now through
  `lease_fail` — its job is re-queued elsewhere (counting one retry, as for a node failure) and
  billing settles the lease (with the SLA credit for a lease that had started).
- Pause / resume: the matching engine's flag (`matching_pause_set`); a paused matcher records
  nothing and places nothing, bookings stay pending.
- Run a round now: `match_round_run`, the service the Celery task `broker.tasks.match_round` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from broker.models import Job, Lease, MatchRound, PriceOffer
from broker.selectors.console import AssignmentCheck, job_assignment_check
from broker.services.leases import HOLDING_STATES, lease_create, lease_fail, price_floor
from broker.services.matching import match_round_run, matching_pause_set
from broker.services.price_offers import price_offer_create
from common.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from common.services import audit_log
from marketplace.models import Node

SHARD = "default"


def _require_staff(by: Any) -> None:
    if not (getattr(by, "is_authenticated", False) and getattr(by, "is_staff", False)):
        raise PermissionDenied("Staff only.")


def _node(node_id: int) -> Node:
    node = Node.objects.select_related("gpu_model").filter(pk=node_id).first()
    if node is None:
        raise NotFound("No such node.")
    return node


def job_assign_manual(
    *, job_id: int, node_id: int, by: Any, override: bool = False, reason: str = ""
) -> Lease | PriceOffer:
    """Staff: lease pending job `job_id` on node `node_id` now (the node's lowest free GPU slots).

    Refused (400, code `constraint_violation`) when the node fails one of the job's hard constraints,
    unless `override` with a `reason`; refused (409) when the node cannot take new leases or lacks
    free GPUs for the period, override or not. An override whose price falls below the provider's ask (or an
    interruptible job's min bid) leases nothing: it returns a PriceOffer the provider must accept first."""
    _require_staff(by)
    reason = reason.strip()
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound("No such job.")
    node = _node(node_id)
    check = job_assignment_check(job=job, node=node)
    if check.blocker:
        raise Conflict(check.blocker, code="node_unavailable")
    if check.violation and not override:
        raise ValidationFailed(
            f"Node {node.name} does not meet job {job.pk}'s hard constraints: {check.violation}. "
            "Tick “override constraints” and give a reason to assign it anyway.",
            code="constraint_violation",
        )
    if check.violation and not reason:
        raise ValidationFailed("Overriding the job's constraints needs a reason (it is audit-logged).")
    assert check.starts_at is not None and check.ends_at is not None
    floor = price_floor(mode=job.mode, ask_micros=node.price_micros, min_bid_micros=node.min_bid_micros)
    if check.price_micros < floor:
        return price_offer_create(
            job=job, node=node, price_micros=check.price_micros, floor_micros=floor, by=by, reason=reason
        )
    try:
        with transaction.atomic():
            lease = lease_create(
                job_id=job.pk,
                node_id=node.pk,
                gpu_slots=check.slots,
                price_micros=check.price_micros,
                starts_at=check.starts_at,
                ends_at=check.ends_at,
            )
            _audit_assignment(by=by, job=job, node=node, lease=lease, check=check, reason=reason)
    except IntegrityError as exc:  # PostgreSQL's exclusion constraint: a concurrent lease took a GPU first
        raise Conflict(
            f"A GPU of node {node.name} was leased by another assignment a moment ago; nothing was changed. "
            "Reload and try again.",
            code="gpu_taken",
        ) from exc
    return lease


def _audit_assignment(*, by: Any, job: Job, node: Node, lease: Lease, check: AssignmentCheck, reason: str) -> None:
    audit_log(
        actor=by,
        action="job.assign_override" if check.violation else "job.assign",
        target=f"job:{job.pk}",
        details={
            "node_id": node.pk,
            "lease_id": lease.pk,
            "gpu_slots": check.slots,
            "price_micros": check.price_micros,
            "override": bool(check.violation),
            "violated": check.violation_code,
            "violation": check.violation,
            "reason": reason[:500],
        },
    )


def node_cordon(*, node_id: int, by: Any, reason: str = "") -> bool:
    """Staff: take no new leases on the node (existing ones run on). False when already cordoned."""
    _require_staff(by)
    with transaction.atomic():
        changed = bool(
            Node.objects.filter(pk=_node(node_id).pk, cordoned=False).update(cordoned=True, updated_at=timezone.now())
        )
        if changed:
            audit_log(actor=by, action="node.cordon", target=f"node:{node_id}", details={"reason": reason[:500]})
    return changed


def node_uncordon(*, node_id: int, by: Any, reason: str = "") -> bool:
    """Staff: the node takes new leases again. False when it was not cordoned."""
    _require_staff(by)
    with transaction.atomic():
        changed = bool(
            Node.objects.filter(pk=_node(node_id).pk, cordoned=True).update(cordoned=False, updated_at=timezone.now())
        )
        if changed:
            audit_log(actor=by, action="node.uncordon", target=f"node:{node_id}", details={"reason": reason[:500]})
    return changed


@dataclass(frozen=True)
class DrainResult:
    cordoned_now: bool
    leases_ended: int
    leases_left: int


def node_drain(*, node_id: int, by: Any, end_leases: bool = False, reason: str = "") -> DrainResult:
    """Staff: cordon the node and empty it. Default: its leases run to their end (no new ones start).
    With `end_leases`: every reserved/active lease fails over now (`lease_fail`): the jobs are
    re-queued for other nodes, billing settles what ran."""
    _require_staff(by)
    cordoned_now = node_cordon(node_id=node_id, by=by, reason=f"drain: {reason}".strip(": "))
    ended = 0
    if end_leases:
        lease_ids = list(
            Lease.objects.filter(node_id=node_id, state__in=HOLDING_STATES).order_by("pk").values_list("pk", flat=True)
        )
        note = f"node drained by staff{': ' + reason if reason else ''}"
        ended = sum(1 for lease_id in lease_ids if lease_fail(lease_id=lease_id, reason=note[:200]))
    left = Lease.objects.filter(node_id=node_id, state__in=HOLDING_STATES).count()
    audit_log(
        actor=by,
        action="node.drain",
        target=f"node:{node_id}",
        details={"end_leases": end_leases, "leases_ended": ended, "leases_left": left, "reason": reason[:500]},
    )
    return DrainResult(cordoned_now=cordoned_now, leases_ended=ended, leases_left=left)


def matching_pause(*, by: Any, paused: bool, reason: str = "") -> None:
    """Staff: pause (True) or resume (False) matching for every matcher process."""
    _require_staff(by)
    matching_pause_set(paused=paused)
    audit_log(
        actor=by,
        action="matching.pause" if paused else "matching.resume",
        target=f"matching:{SHARD}",
        details={"reason": reason[:500]},
    )


def match_round_now(*, by: Any) -> MatchRound:
    """Staff: run one matching round now, through the service the Celery task calls. The returned
    round is unsaved (pk None) with a note when it did not run (paused, or another matcher's lock)."""
    _require_staff(by)
    rnd = match_round_run(shard=SHARD)
    audit_log(
        actor=by,
        action="matching.run_round",
        target=f"round:{rnd.pk}" if rnd.pk else f"matching:{SHARD}",
        details={"placed": rnd.placed, "considered": rnd.jobs_considered, "note": rnd.note},
    )
    return rnd
