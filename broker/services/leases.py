"""Leases: a job's hold on specific GPU slots of one node for a period, at an agreed price.

States `reserved → active → ended | preempted | failed`. Every change is a conditional UPDATE on
the lease's current state, so a repeated or late call changes nothing and returns False. The job
moves with it through `job_transition`.

No double booking: on PostgreSQL the exclusion constraint `leaseslot_no_overlap` (migration 0003)
rejects two LeaseSlots on the same (node, slot) with overlapping periods. On SQLite, writers are
serialised by `BEGIN IMMEDIATE` (settings), and `lease_slots_conflicting` re-checks overlaps inside
the writing transaction before inserting.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.services.metering import DEFAULT_EGRESS_BYTES_PER_S
from billing.services.settlement import lease_account_open, lease_settle_final
from billing.services.sla import sla_credit_for_failed_lease
from broker import dispatch
from broker.models import Job, JobMode, JobState, Lease, LeaseSlot, LeaseState, PriceOffer
from broker.services.jobs_state import job_transition
from common.errors import Conflict
from common.money import prorate
from marketplace.models import Node

log = logging.getLogger(__name__)

HOLDING_STATES = (LeaseState.RESERVED, LeaseState.ACTIVE)
LIVE_JOB_STATES = (JobState.MATCHED, JobState.RUNNING)


@dataclass(frozen=True)
class LeasePlan:
    job_id: int
    node_id: int
    gpu_slots: list[int]
    price_micros: int
    starts_at: datetime
    ends_at: datetime
    cpu_cores: int = 0  # consumable node resources the lease holds (GPUs × the job's per-GPU minimums)
    ram_gb: int = 0
    disk_gb: int = 0
    placement_note: str = ""  # why the job went to this node (the job page shows it)

    @property
    def resources(self) -> tuple[int, int, int]:
        return (self.cpu_cores, self.ram_gb, self.disk_gb)


def job_resources(*, job: Job, gpus: int) -> tuple[int, int, int]:
    """CPU cores, RAM and disk a lease of `gpus` GPUs for the job consumes on its node."""
    return (
        gpus * (job.min_cpu_cores_per_gpu or 0),
        gpus * (job.min_ram_gb_per_gpu or 0),
        gpus * (job.min_disk_gb_per_gpu or 0),
    )


def leases_fit_node_resources(
    *, plans: Sequence[LeasePlan], ignore_lease_ids: Sequence[int] = ()
) -> tuple[list[LeasePlan], list[LeasePlan]]:
    """The database-side check that no node's CPU, RAM or disk is overcommitted (call inside the writing
    transaction): locks the plans' node rows in id order, then accepts each plan (in the given order) whose
    needs fit in the node's totals minus every holding lease overlapping its period (and the plans accepted
    before it). Summing every overlapping lease over-counts (never under-counts) the load at any instant.
    `ignore_lease_ids`: leases about to be preempted in the same transaction. Returns (kept, refused)."""
    needy = [p for p in plans if any(p.resources)]
    if not needy:
        return list(plans), []
    node_ids = sorted({p.node_id for p in needy})
    totals = {
        pk: (cpu, ram, disk)
        for pk, cpu, ram, disk in Node.objects.select_for_update()
        .filter(pk__in=node_ids)
        .order_by("pk")
        .values_list("pk", "cpu_cores", "ram_gb", "disk_gb")
    }
    lo = min(p.starts_at for p in needy)
    held: dict[int, list[tuple[datetime, datetime, tuple[int, int, int]]]] = {}
    for node_id, s, e, cpu, ram, disk in (
        Lease.objects.filter(node_id__in=node_ids, state__in=HOLDING_STATES, ends_at__gt=lo)
        .exclude(pk__in=list(ignore_lease_ids))
        .values_list("node_id", "starts_at", "ends_at", "cpu_cores", "ram_gb", "disk_gb")
    ):
        held.setdefault(node_id, []).append((s, e, (cpu, ram, disk)))
    kept: list[LeasePlan] = []
    refused: list[LeasePlan] = []
    for p in plans:
        if not any(p.resources):
            kept.append(p)
            continue
        periods = held.setdefault(p.node_id, [])
        load = [sum(r[k] for s, e, r in periods if s < p.ends_at and e > p.starts_at) for k in range(3)]
        total = totals.get(p.node_id, (0, 0, 0))
        if all(load[k] + p.resources[k] <= total[k] for k in range(3)):
            kept.append(p)
            periods.append((p.starts_at, p.ends_at, p.resources))
        else:
            refused.append(p)
    return kept, refused


def lease_slots_conflicting(*, node_id: int, slots: Sequence[int], starts_at: datetime, ends_at: datetime) -> bool:
    """True when any of `slots` of the node is held by a lease slot overlapping [starts_at, ends_at)."""
    return LeaseSlot.objects.filter(
        node_id=node_id, slot__in=list(slots), starts_at__lt=ends_at, ends_at__gt=starts_at
    ).exists()


def leases_create_bulk(
    *,
    plans: Sequence[LeasePlan],
    check_overlap: bool | None = None,
    timings: dict[str, float] | None = None,
    check_price: bool = True,
) -> list[int]:
    """Insert reserved leases and their slots (call inside the round's transaction); returns lease ids in
    plan order. On PostgreSQL the exclusion constraint is the guard (an overlap raises IntegrityError and
    rolls the round back) and rows go in with COPY; elsewhere each plan is re-checked against existing
    slots first (Conflict on overlap) and rows go in with bulk_create."""
    if not plans:
        return []
    if check_price:  # price consent: never below the provider's ask / min bid (lease_create checks its own)
        _check_prices(plans)
    connection = transaction.get_connection()
    if check_overlap is None:
        check_overlap = connection.vendor != "postgresql"
    if check_overlap:
        _check_overlaps(plans)
    now = timezone.now()
    t0 = time.perf_counter()
    if connection.vendor == "postgresql":
        ids = _copy_leases(plans=plans, now=now)
    else:
        ids = _bulk_create_leases(plans=plans, now=now)
    if timings is not None:
        timings["commit_leases_slots_insert"] = round((time.perf_counter() - t0) * 1000, 2)
    return ids


def _bulk_create_leases(*, plans: Sequence[LeasePlan], now: datetime) -> list[int]:
    """The ORM path (SQLite and others): bulk-insert the leases, then their slots; lease ids in plan order."""
    leases = Lease.objects.bulk_create(
        [
            Lease(
                job_id=p.job_id,
                node_id=p.node_id,
                gpu_slots=list(p.gpu_slots),
                gpu_count=len(p.gpu_slots),
                cpu_cores=p.cpu_cores,
                ram_gb=p.ram_gb,
                disk_gb=p.disk_gb,
                placement_note=p.placement_note[:300],
                price_micros=p.price_micros,
                starts_at=p.starts_at,
                ends_at=p.ends_at,
                state=LeaseState.RESERVED,
                created_at=now,
            )
            for p in plans
        ],
        batch_size=500,
    )
    if leases[0].pk is not None:
        ids = [lease.pk for lease in leases]
    else:  # backends that do not return ids on bulk insert
        by_job = dict(
            Lease.objects.filter(job_id__in=[p.job_id for p in plans], created_at=now).values_list("job_id", "pk")
        )
        ids = [by_job[p.job_id] for p in plans]
    LeaseSlot.objects.bulk_create(
        [
            LeaseSlot(lease_id=lease_id, node_id=p.node_id, slot=s, starts_at=p.starts_at, ends_at=p.ends_at)
            for lease_id, p in zip(ids, plans, strict=True)
            for s in p.gpu_slots
        ],
        batch_size=500,
    )
    return ids


def _copy_leases(*, plans: Sequence[LeasePlan], now: datetime) -> list[int]:
    """PostgreSQL fast path: ids drawn from the lease sequence, then COPY leases and slots."""
    connection = transaction.get_connection()
    with connection.cursor() as cursor, connection.wrap_database_errors:  # psycopg errors → django.db errors
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('broker_lease', 'id')) FROM generate_series(1, %s)", [len(plans)]
        )
        ids = [row[0] for row in cursor.fetchall()]
        raw = cursor.cursor  # the psycopg cursor
        with raw.copy(
            "COPY broker_lease (id, job_id, node_id, gpu_slots, gpu_count, cpu_cores, ram_gb, disk_gb, "
            "placement_note, price_micros, starts_at, ends_at, state, end_reason, port_map, created_at) FROM STDIN"
        ) as copy:
            for lease_id, p in zip(ids, plans, strict=True):
                copy.write_row(
                    (
                        lease_id,
                        p.job_id,
                        p.node_id,
                        json.dumps(list(p.gpu_slots)),
                        len(p.gpu_slots),
                        p.cpu_cores,
                        p.ram_gb,
                        p.disk_gb,
                        p.placement_note[:300],
                        p.price_micros,
                        p.starts_at,
                        p.ends_at,
                        LeaseState.RESERVED.value,
                        "",
                        "[]",  # port_map: none published yet
                        now,
                    )
                )
        with raw.copy("COPY broker_leaseslot (lease_id, node_id, slot, starts_at, ends_at) FROM STDIN") as copy:
            for lease_id, p in zip(ids, plans, strict=True):
                for s in p.gpu_slots:
                    copy.write_row((lease_id, p.node_id, s, p.starts_at, p.ends_at))
    return ids


def price_floor(*, mode: str, ask_micros: int, min_bid_micros: int) -> int:
    """The lowest price per GPU-hour the provider consented to by listing: its ask, or for interruptible work its
    minimum bid (issue 12 point 5). Below it a lease needs the provider's acceptance of a PriceOffer."""
    return min_bid_micros if mode == JobMode.INTERRUPTIBLE else ask_micros


def _check_prices(plans: Sequence[LeasePlan]) -> None:
    """Price consent: refuse (409 `below_ask`) a plan priced below its node's floor (two queries)."""
    modes = dict(Job.objects.filter(pk__in={p.job_id for p in plans}).values_list("pk", "mode"))
    floors = {
        pk: (ask, min_bid)
        for pk, ask, min_bid in Node.objects.filter(pk__in={p.node_id for p in plans}).values_list(
            "pk", "price_micros", "min_bid_micros"
        )
    }
    for p in plans:
        ask, min_bid = floors[p.node_id]
        floor = price_floor(mode=modes[p.job_id], ask_micros=ask, min_bid_micros=min_bid)
        if p.price_micros < floor:
            raise Conflict(
                f"Job {p.job_id} cannot be leased on node {p.node_id} at {p.price_micros} micro-USD per GPU-hour: the "
                f"provider's {'minimum bid' if modes[p.job_id] == JobMode.INTERRUPTIBLE else 'ask'} is {floor}. "
                "A lower price needs the provider's acceptance of a price offer.",
                code="below_ask",
            )


def _check_overlaps(plans: Sequence[LeasePlan]) -> None:
    """Overlap re-check for databases without the exclusion constraint: against the database and within the batch."""
    seen: dict[tuple[int, int], list[tuple[datetime, datetime]]] = {}
    node_ids = sorted({p.node_id for p in plans})
    lo = min(p.starts_at for p in plans)
    for node_id, slot, s, e in LeaseSlot.objects.filter(node_id__in=node_ids, ends_at__gt=lo).values_list(
        "node_id", "slot", "starts_at", "ends_at"
    ):
        seen.setdefault((node_id, slot), []).append((s, e))
    for p in plans:
        for slot in p.gpu_slots:
            periods = seen.setdefault((p.node_id, slot), [])
            if any(s < p.ends_at and e > p.starts_at for s, e in periods):
                raise Conflict(f"GPU {slot} of node {p.node_id} is already leased for an overlapping period")
            periods.append((p.starts_at, p.ends_at))


def lease_create(
    *,
    job_id: int,
    node_id: int,
    gpu_slots: Sequence[int],
    price_micros: int,
    starts_at: datetime,
    ends_at: datetime,
    consented_offer_id: int | None = None,
) -> Lease:
    """One lease for a pending job (manual assignment, tests): job pending → matched, slots held.

    Never below the provider's floor (409 `below_ask`) unless `consented_offer_id` names the PriceOffer the
    provider accepted at this price (services/price_offers.py)."""
    job = Job.objects.get(pk=job_id)
    cpu, ram, disk = job_resources(job=job, gpus=len(gpu_slots))
    plan = LeasePlan(job_id, node_id, sorted(gpu_slots), price_micros, starts_at, ends_at, cpu, ram, disk)
    if consented_offer_id is None:
        _check_prices([plan])
    elif not PriceOffer.objects.filter(
        pk=consented_offer_id, job_id=job_id, node_id=node_id, price_micros=price_micros
    ).exists():
        raise Conflict("The price offer does not match this lease.", code="below_ask")
    with transaction.atomic():
        # Two assignments to one node wait here, one after the other: without the row lock their
        # concurrent slot inserts can deadlock inside PostgreSQL's exclusion-constraint check.
        list(Node.objects.select_for_update().filter(pk=node_id).values_list("pk", flat=True))
        if leases_fit_node_resources(plans=[plan])[1]:
            raise Conflict(
                f"Node {node_id} does not have {cpu} CPU cores, {ram} GB RAM and {disk} GB disk free "
                "for that period (other leases hold them)."
            )
        if not job_transition(
            job_id=job_id,
            from_states=[JobState.PENDING],
            to_state=JobState.MATCHED,
            note=f"leased {len(plan.gpu_slots)} GPU(s) on node {node_id}",
            pending_reason="",
        ):
            raise Conflict(f"Job {job_id} is not pending; it cannot be leased.")
        _check_overlaps([plan])  # on PostgreSQL the constraint would catch it too; a clear 409 is nicer
        lease_id = leases_create_bulk(plans=[plan], check_overlap=False, check_price=False)[0]
        return Lease.objects.get(pk=lease_id)


def _truncate_slots(*, lease_id: int, now: datetime) -> None:
    """Free the lease's GPUs from `now` on (a slot not yet started becomes an empty period)."""
    LeaseSlot.objects.filter(lease_id=lease_id, starts_at__gt=now).update(ends_at=F("starts_at"))
    LeaseSlot.objects.filter(lease_id=lease_id, starts_at__lte=now, ends_at__gt=now).update(ends_at=now)


def _close(*, lease_id: int, to_state: LeaseState, reason: str, now: datetime) -> Lease | None:
    updated = Lease.objects.filter(pk=lease_id, state__in=HOLDING_STATES).update(
        state=to_state, ended_at=now, end_reason=reason[:200]
    )
    if not updated:
        return None
    _truncate_slots(lease_id=lease_id, now=now)
    return Lease.objects.select_related("job", "job__customer__user", "node__provider__user").get(pk=lease_id)


def lease_activate(*, lease_id: int, now: datetime | None = None) -> bool:
    """reserved → active on the agent's first usage report; the job matched → running.

    Activation starts the broker clock billing meters (billing/services/metering.py, THE RULE): never before the
    lease's scheduled start. The billing account carries the job's escrow hold, which bounds all its charges.
    """
    now = now or timezone.now()
    with transaction.atomic():
        starts_at = Lease.objects.filter(pk=lease_id).values_list("starts_at", flat=True).first()
        if starts_at is None:
            return False
        active_from = max(now, starts_at)
        updated = Lease.objects.filter(pk=lease_id, state=LeaseState.RESERVED).update(
            state=LeaseState.ACTIVE, activated_at=active_from
        )
        if not updated:
            return False
        lease = Lease.objects.select_related("job__customer__user", "node__provider__user").get(pk=lease_id)
        node = lease.node
        job_transition(
            job_id=lease.job_id, from_states=[JobState.MATCHED], to_state=JobState.RUNNING, note="agent started"
        )
        lease_account_open(
            lease_ref=lease.pk,
            job_ref=lease.job_id,
            customer_user=lease.job.customer.user,
            provider_user=lease.node.provider.user,
            node_id=lease.node_id,
            price_micros=lease.price_micros,
            gpu_count=lease.gpu_count,
            hold_micros=lease.job.held_micros,
            active_from=active_from,
            period_end=lease.ends_at,
            storage_price_micros=node.storage_price_micros,
            egress_price_micros=node.egress_price_micros,
            storage_gb_cap=node.disk_gb,
            egress_bytes_per_s_cap=node.inet_up_mbps * 125_000 or DEFAULT_EGRESS_BYTES_PER_S,
        )
    return True


def lease_end(
    *, lease_id: int, reason: str = "completed", complete_job: bool = False, billed_until: datetime | None = None
) -> bool:
    """reserved/active → ended; the GPUs free up from now. With `complete_job` (lease expiry, workload
    finished) the job moves matched/running → completed and its unused escrow is released; without it
    (e.g. the booking service ending leases of a job it is cancelling) the caller owns the job's state.
    `billed_until` (the agent's exit report) may stop the billing clock earlier than now, never later."""
    now = timezone.now()
    with transaction.atomic():
        lease = _close(lease_id=lease_id, to_state=LeaseState.ENDED, reason=reason, now=now)
        if lease is None:
            return False
        completed = complete_job and job_transition(
            job_id=lease.job_id, from_states=LIVE_JOB_STATES, to_state=JobState.COMPLETED, note=f"lease ended: {reason}"
        )
        if completed:  # without complete_job the caller (e.g. job_cancel) owns the job's state and its money
            ended_at = min(billed_until, now) if billed_until is not None else now
            _lease_close_money(lease=lease, job_terminal=True, failed=False, ended_at=ended_at)
    return True


FAILED_REASONS = frozenset({"oom", "image_pull_failed", "start_failed"})


def exit_note(*, exit_code: int | None, reason: str, detail: str = "") -> str:
    """Words for the timeline: "exited with code 3", "out of memory (exit code 137)", "image pull failed: …"."""
    words = {
        "oom": "out of memory",
        "image_pull_failed": "image pull failed",
        "start_failed": "could not start",
        "stopped": "stopped by the platform",
        "lease_ended": "booked time over",
    }.get(reason, "exited")
    text = (
        words
        if exit_code is None
        else (f"exited with code {exit_code}" if reason == "exited" else f"{words} (exit code {exit_code})")
    )
    return f"{text}: {detail}" if detail and detail not in (reason, words) else text


def lease_exit(
    *, lease_id: int, exit_code: int | None, reason: str, detail: str = "", billed_until: datetime | None = None
) -> bool:
    """The agent reports the workload ended: the lease ends (GPUs free from now) and the job completes on a
    zero exit (or the booked time running out), or fails on a non-zero exit, out of memory, a failed image
    pull or start, keeping the exit code and reason. The customer pays for what ran either way (the lease is
    settled and the unused escrow released). A lease already closed (expired, cancelled, preempted) only gets
    the exit code recorded on its job when none is."""
    failed = reason in FAILED_REASONS or (exit_code not in (None, 0) and reason != "lease_ended")
    note = exit_note(exit_code=exit_code, reason=reason, detail=detail)
    outcome = {"exit_code": exit_code, "end_reason": reason, "phase": "exited"}
    now = timezone.now()
    with transaction.atomic():
        lease = _close(lease_id=lease_id, to_state=LeaseState.ENDED, reason=f"workload {note}", now=now)
        if lease is None:
            job_ids = Lease.objects.filter(pk=lease_id).values_list("job_id", flat=True)
            Job.objects.filter(pk__in=job_ids, exit_code__isnull=True, end_reason="").update(**outcome)
            return False
        to_state = JobState.FAILED if failed else JobState.COMPLETED
        done = job_transition(job_id=lease.job_id, from_states=LIVE_JOB_STATES, to_state=to_state, note=note, **outcome)
        if done:  # the exit report may only shorten the billed time, never lengthen it
            ended_at = min(billed_until, now) if billed_until is not None else now
            _lease_close_money(lease=lease, job_terminal=True, failed=False, ended_at=ended_at)
    return True


def lease_fail(*, lease_id: int, reason: str = "node failed") -> bool:
    """reserved/active → failed (node failure). The job goes back to pending with retries+1, or to
    failed when its retry budget is spent (then its unused escrow is released). Billing's SLA credit
    is applied through settlement (or the sla hook when settlement is absent)."""
    now = timezone.now()
    with transaction.atomic():
        lease = _close(lease_id=lease_id, to_state=LeaseState.FAILED, reason=reason, now=now)
        if lease is None:
            return False
        job = Job.objects.select_for_update().get(pk=lease.job_id)
        terminal = False
        if job.retries < job.max_retries:
            job_transition(
                job_id=job.pk,
                from_states=LIVE_JOB_STATES,
                to_state=JobState.PENDING,
                note=f"lease {lease.pk} failed ({reason}); re-queued, retry {job.retries + 1} of {job.max_retries}",
                retries=F("retries") + 1,
                pending_reason=f"Re-queued after its node failed ({reason}).",
            )
        else:
            terminal = job_transition(
                job_id=job.pk,
                from_states=LIVE_JOB_STATES,
                to_state=JobState.FAILED,
                note=f"lease {lease.pk} failed ({reason}); retry budget of {job.max_retries} spent",
            )
        _lease_close_money(lease=lease, job_terminal=terminal, failed=True)
    dispatch.match_round_soon()  # after commit: the job is pending again
    return True


def lease_preempt(*, lease_id: int, reason: str = "preempted by on-demand work", at: datetime | None = None) -> bool:
    """reserved/active → preempted; the interruptible job goes back to pending (retries kept) with a
    `preempted` step in its history. The agent sees the lease in its stop list.

    `at`: when the lease ends (default now). A match round passes its own single time, the one at which the
    displacing lease starts, so the two leases meet exactly on the GPU slots and never overlap."""
    now = at or timezone.now()
    with transaction.atomic():
        lease = _close(lease_id=lease_id, to_state=LeaseState.PREEMPTED, reason=reason, now=now)
        if lease is None:
            return False
        if job_transition(
            job_id=lease.job_id,
            from_states=LIVE_JOB_STATES,
            to_state=JobState.PREEMPTED,
            note=f"lease {lease.pk}: {reason}",
        ):
            job_transition(
                job_id=lease.job_id,
                from_states=[JobState.PREEMPTED],
                to_state=JobState.PENDING,
                note="re-queued after preemption",
                pending_reason="Re-queued: its interruptible lease was preempted.",
            )
        _lease_close_money(lease=lease, job_terminal=False, failed=False)
    return True


def lease_cost_so_far(*, lease: Lease, now: datetime | None = None) -> int:
    """Accrued cost of a lease from activation to its end (or now), at its price."""
    if lease.activated_at is None:
        return 0
    until = lease.ended_at or now or timezone.now()
    seconds = max(0, int((min(until, lease.ends_at) - lease.activated_at).total_seconds()))
    return prorate(micros_per_hour=lease.price_micros, seconds=seconds, gpus=lease.gpu_count)


# ---------------------------------------------------------------------------------------------
# MONEY HOOK — billing takes this over. Everything money-related a lease close does is here.
# ---------------------------------------------------------------------------------------------
def _lease_close_money(*, lease: Lease, job_terminal: bool, failed: bool, ended_at: datetime | None = None) -> None:
    """Close the lease's money.

    - A lease that ran (activated) has a billing account: `billing.services.settlement.lease_settle_final`
      settles it, releases the job's unused hold when the job is terminal, and applies the SLA credit when
      `failed`.
    - Otherwise (lease never started, or settlement absent): when the job is terminal, release the
      job's hold minus what its leases accrued with `escrow_release` under a deterministic key; on a
      failure call `billing.services.sla.sla_credit_for_failed_lease` if it exists.
    The job's `held_micros` is zeroed (conditionally) once released, so a repeat releases nothing.
    """
    job = lease.job
    hold = Job.objects.filter(pk=job.pk).values_list("held_micros", flat=True).first() or 0
    release_hold = hold if job_terminal else 0
    if lease.activated_at is not None:
        try:
            lease_settle_final(
                lease_ref=lease.pk,
                job_ref=job.pk,
                customer_user=job.customer.user,
                release_unused_hold_micros=release_hold,
                failed=failed,
                ended_at=ended_at or lease.ended_at,
            )
        except Exception:  # a missing account must not block failover; fall through to the plain release
            log.exception("lease_settle_final failed for lease %s", lease.pk)
        else:
            if job_terminal:
                Job.objects.filter(pk=job.pk, held_micros=hold).update(held_micros=0)
            return
    if failed and lease.activated_at is not None:
        try:
            sla_credit_for_failed_lease(lease_ref=lease.pk)
        except Exception:
            log.exception("sla_credit_for_failed_lease failed for lease %s", lease.pk)
    if not job_terminal or hold <= 0:
        return
    accrued = sum(lease_cost_so_far(lease=x) for x in Lease.objects.filter(job_id=job.pk))
    release = max(0, hold - accrued)
    if release and Job.objects.filter(pk=job.pk, held_micros=hold).update(held_micros=hold - release):
        from billing.services.wallet import escrow_release

        escrow_release(
            user=job.customer.user,
            amount_micros=release,
            key=f"job:{job.pk}:escrow-release-final",
            memo=f"Unused hold of job {job.pk}",
        )


def leases_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """End leases whose period is over (the job completes). Returns how many ended."""
    now = now or timezone.now()
    ids = list(
        Lease.objects.filter(state__in=HOLDING_STATES, ends_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for lease_id in ids if lease_end(lease_id=lease_id, reason="expired", complete_job=True))


def leases_holding(*, node_id: int) -> list[Lease]:
    return list(Lease.objects.filter(node_id=node_id, state__in=HOLDING_STATES).order_by("pk"))
