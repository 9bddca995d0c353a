"""Match rounds: snapshot of pending jobs and free capacity → pure engine → one commit.

`match_round_run` is what the Celery task, the console's "run now" and the benchmark call. One
matcher per shard runs at a time (broker/locks.py); a round is idempotent: the commit only leases
jobs that are still pending (locked), and the database refuses overlapping GPU slots, so a crashed
round or a re-run cannot double-book.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from broker import engine
from broker.engine.fairshare import decayed_usage, priority_order
from broker.engine.scarcity import forecast_groups
from broker.jobspec import SNAPSHOT_COLUMNS
from broker.locks import shard_lock
from broker.models import Job, JobEvent, JobMode, JobState, Lease, LeaseSlot, MatchRound, Placement
from broker.services.job_notify import job_steps_notify
from broker.services.jobs_state import job_transition
from broker.services.leases import (
    HOLDING_STATES,
    LeasePlan,
    lease_preempt,
    leases_create_bulk,
    leases_fit_node_resources,
)
from common.errors import DomainError
from common.money import format_rate
from marketplace.models import TIER_RANK, ChallengeState, GPUModel, Node, NodeStatus, Region

log = logging.getLogger(__name__)

PAUSE_KEY = "broker:matching:paused"
MAX_SLOTS_DEFAULT = 8
REGIONS = [r.value for r in Region]
MODE_CODE: dict[str, int] = {
    JobMode.ON_DEMAND: engine.MODE_ON_DEMAND,
    JobMode.INTERRUPTIBLE: engine.MODE_INTERRUPTIBLE,
    JobMode.RESERVED: engine.MODE_RESERVED,
}

PLACEMENT_CODE: dict[str, int] = {
    Placement.CHEAPEST: engine.PLACE_CHEAPEST,
    Placement.PERF_PER_DOLLAR: engine.PLACE_PERF_PER_DOLLAR,
    Placement.RELIABLE: engine.PLACE_RELIABLE,
}

# Why a job went to its node (engine.Placement.why → the lease's placement note on the job page).
WHY_TEXT = {
    "pinned": "The node you booked from offer search.",
    "cheapest": "The cheapest offer with free GPUs that met your requirements in this round.",
    "perf_per_dollar": "The fitting offer with the most measured performance per dollar (your placement preference).",
    "reliable": "The most reliable fitting offer (your placement preference).",
    "bid": "Interruptible: you pay your bid on any node whose minimum bid it meets; this one scored best.",
    "rerouted": "Placed by the round's optimisation step, which moves jobs so that more of them fit.",
    "preempt": "GPUs freed by preempting lower-bid interruptible work on this node.",
    "backfill": "Backfill: the GPUs are idle until a later reservation starts, and your job ends before it.",
}

REASON_TEXT = {
    "no_node_with_gpu_count": "No listed node has that many GPUs in one machine.",
    "gpu_model": "No available node has one of the allowed GPU models.",
    "gpu_ram": "No available node has enough GPU memory.",
    "compute_capability": "No available node meets the minimum compute capability.",
    "tier": "No available node meets the minimum tier.",
    "region": "No available node is in the allowed regions.",
    "verified": "No verified node meets the requirements.",
    "reliability": "No node meeting the requirements is reliable enough.",
    "inet": "No node meeting the requirements has enough download bandwidth.",
    "cpu": "No node meeting the requirements has enough CPU cores free (GPUs × cores per GPU).",
    "ram": "No node meeting the requirements has enough RAM free (GPUs × RAM per GPU).",
    "disk": "No node meeting the requirements has enough disk free (GPUs × disk per GPU).",
    "availability_window": "No node meeting the requirements is listed for the whole period.",
    "price": "Nodes meet the requirements but ask more than the price limit.",
    "pinned_node": "The node you booked from search cannot take the job now (taken, offline or no longer fits).",
    "capacity": "Nodes fit but their GPUs are leased for the period.",
    "contention": "GPUs that fit went to higher-priority jobs in this round.",
}


def _epoch(dt: datetime | None, default: float) -> float:
    return dt.timestamp() if dt is not None else default


def matching_paused() -> bool:
    return bool(cache.get(PAUSE_KEY))


def matching_pause_set(*, paused: bool) -> None:
    """Pause or resume matching (the console's switch). Stored in the cache shared by all processes."""
    if paused:
        cache.set(PAUSE_KEY, True, timeout=None)
    else:
        cache.delete(PAUSE_KEY)


@dataclass
class Snapshot:
    now: datetime
    jobs: engine.Jobs
    nodes: engine.Nodes
    models: engine.Models
    preemptible: engine.Preemptible
    job_ids: list[int]
    node_ids: list[int]


def _models_table() -> tuple[engine.Models, dict[int, int]]:
    rows = list(
        GPUModel.objects.order_by("pk").values_list("pk", "vram_gb", "compute_capability", "tier", "fp16_tflops")
    )
    index = {pk: i for i, (pk, *_rest) in enumerate(rows)}
    return (
        engine.Models(
            vram=np.array([float(r[1]) for r in rows]),
            cc=np.array([float(r[2] or 0) for r in rows]),
            tier=np.array([TIER_RANK.get(r[3], 0) for r in rows], dtype=np.int64),  # type: ignore[call-overload]
            fp16=np.array([float(r[4] or 0) for r in rows]),
        ),
        index,
    )


def _reserved_slots_hold(
    *,
    slot_free_at: np.ndarray,
    pos: dict[int, int],
    gpu_count: np.ndarray,
    now: datetime,
    held_now: set[tuple[int, int]] | None = None,
) -> None:
    """Reserved contracts hold the node's highest slots until their term ends (broker/services/reserved.py).
    `held_now` collects the (node index, slot) pairs they hold."""
    from broker.services.reserved import reserved_holds

    used: dict[int, int] = {}
    for node_id, count, ends_at in reserved_holds(node_ids=list(pos), now=now):
        i = pos[node_id]
        top = int(gpu_count[i]) - used.get(node_id, 0)
        for slot in range(max(0, top - count), top):
            slot_free_at[i, slot] = max(slot_free_at[i, slot], ends_at.timestamp())
            if held_now is not None:
                held_now.add((i, slot))
        used[node_id] = used.get(node_id, 0) + count


def _slot_gaps(
    *, shape: tuple[int, ...], pos: dict[int, int], now: datetime, held_now: set[tuple[int, int]]
) -> np.ndarray | None:
    """Backfill gaps: for each slot free now whose next holding starts later, that start (-inf elsewhere);
    None when no slot has a later holding (the usual case: one cheap query)."""
    future = list(
        LeaseSlot.objects.filter(starts_at__gt=now, ends_at__gt=now).values_list("node_id", "slot", "starts_at")
    )
    if not future:
        return None
    gap = np.full(shape, -np.inf)
    for node_id, slot, starts_at in future:
        i = pos.get(node_id)
        if i is not None and slot < shape[1]:
            t = starts_at.timestamp()
            gap[i, slot] = t if gap[i, slot] == -np.inf else min(gap[i, slot], t)
    busy = LeaseSlot.objects.filter(
        node_id__in=sorted({f[0] for f in future}), starts_at__lte=now, ends_at__gt=now
    ).values_list("node_id", "slot")
    for i, slot in [*((pos.get(nid), s) for nid, s in busy), *held_now]:
        if i is not None and slot < shape[1]:
            gap[i, slot] = -np.inf
    return gap


def _resources_free(*, node_rows: list[Any], pos: dict[int, int], now: datetime) -> np.ndarray:
    """(3, N) CPU cores, RAM and disk of each node not held by a lease that has not ended (conservative: a
    lease starting later counts from now)."""
    free = np.array([[r[6], r[7], r[8]] for r in node_rows], dtype=float).reshape(-1, 3).T.copy()
    held = (
        Lease.objects.filter(state__in=HOLDING_STATES, ends_at__gt=now)
        .values("node_id")
        .annotate(cpu=Sum("cpu_cores"), ram=Sum("ram_gb"), disk=Sum("disk_gb"))
        .values_list("node_id", "cpu", "ram", "disk")
    )
    for node_id, cpu, ram, disk in held:
        i = pos.get(node_id)
        if i is not None and (cpu or ram or disk):
            free[:, i] -= (cpu or 0, ram or 0, disk or 0)
    return free


# Node columns the snapshot reads (positions matter: _nodes_table indexes the rows).
_NODE_COLUMNS = (
    "pk",
    "gpu_model_id",
    "region",
    "reliability",
    "verified",
    "inet_down_mbps",
    "cpu_cores",
    "ram_gb",
    "disk_gb",
    "gpu_count",
    "price_micros",
    "min_bid_micros",
    "dlperf",
    "available_from",
    "available_until",
)


@dataclass
class _SlotTable:
    """When each GPU slot of each node becomes free (-inf: free now, inf: no such slot) and the latest holding."""

    pos: dict[int, int]  # node id -> row
    free_at: np.ndarray
    holdings: dict[tuple[int, int], float]  # (row, slot) -> end of the last lease slot holding it
    max_slots: int
    gap_until: np.ndarray | None = None  # backfill gaps (_slot_gaps)


def _slot_table(*, node_ids: list[int], gpu_count: np.ndarray, now: datetime) -> _SlotTable:
    """Free capacity: the slots current lease slots and reserved contracts hold, per node row."""
    n = len(node_ids)
    pos = {pk: i for i, pk in enumerate(node_ids)}
    max_slots = max(int(gpu_count.max()) if n else MAX_SLOTS_DEFAULT, MAX_SLOTS_DEFAULT)
    slot_free_at = np.full((n, max_slots), np.inf)
    if n:
        slot_free_at[np.arange(max_slots)[None, :] < gpu_count[:, None]] = -np.inf
    holdings: dict[tuple[int, int], float] = {}
    for node_id, slot, ends_at in LeaseSlot.objects.filter(ends_at__gt=now).values_list("node_id", "slot", "ends_at"):
        i = pos.get(node_id)
        if i is None or slot >= max_slots:
            continue
        t = ends_at.timestamp()
        if t > slot_free_at[i, slot]:
            slot_free_at[i, slot] = t
        holdings[(i, slot)] = max(holdings.get((i, slot), -np.inf), t)
    contract_held: set[tuple[int, int]] = set()
    _reserved_slots_hold(slot_free_at=slot_free_at, pos=pos, gpu_count=gpu_count, now=now, held_now=contract_held)
    gap_until = _slot_gaps(shape=slot_free_at.shape, pos=pos, now=now, held_now=contract_held)
    return _SlotTable(pos=pos, free_at=slot_free_at, holdings=holdings, max_slots=max_slots, gap_until=gap_until)


def _nodes_table(
    *, now: datetime, models: engine.Models, model_index: dict[int, int]
) -> tuple[engine.Nodes, list[int], _SlotTable]:
    """The engine's node arrays: listed, online, not cordoned, and not failing their latest compute challenge."""
    node_rows = list(
        Node.objects.filter(listed=True, cordoned=False, status=NodeStatus.ONLINE)
        .exclude(challenge_verdict=ChallengeState.FAILED)
        .order_by("pk")
        .values_list(*_NODE_COLUMNS)
    )
    n = len(node_rows)
    node_ids = [r[0] for r in node_rows]
    region_index = {r: i for i, r in enumerate(REGIONS)}
    gpu_count = np.array([r[9] for r in node_rows], dtype=np.int64)
    slots = _slot_table(node_ids=node_ids, gpu_count=gpu_count, now=now)
    res_free = _resources_free(node_rows=node_rows, pos=slots.pos, now=now)
    fp16 = models.fp16[[model_index[r[1]] for r in node_rows]] if n else np.zeros(0)
    nodes = engine.Nodes(
        ids=np.array(node_ids, dtype=np.int64),
        model=np.array([model_index[r[1]] for r in node_rows], dtype=np.int64),
        region=np.array([region_index.get(r[2], 0) for r in node_rows], dtype=np.int64),
        reliability=np.array([r[3] for r in node_rows], dtype=float),
        verified=np.array([r[4] for r in node_rows], dtype=bool),
        inet=np.array([r[5] for r in node_rows], dtype=float),
        cpu_free=res_free[0],
        ram_free=res_free[1],
        disk_free=res_free[2],
        gpu_count=gpu_count,
        ask=np.array([r[10] for r in node_rows], dtype=float),
        min_bid=np.array([r[11] for r in node_rows], dtype=float),
        dlperf=np.array([r[12] if r[12] is not None else np.nan for r in node_rows], dtype=float) if n else np.zeros(0),
        avail_from=np.array([_epoch(r[13], -np.inf) for r in node_rows], dtype=float),
        avail_until=np.array([_epoch(r[14], np.inf) for r in node_rows], dtype=float),
        slot_free_at=slots.free_at,
        gap_until=slots.gap_until,
    )
    if n:
        nodes.dlperf = np.where(np.isnan(nodes.dlperf), fp16, nodes.dlperf)
    return nodes, node_ids, slots


def _preemptible_table(*, now: datetime, slots: _SlotTable) -> engine.Preemptible:
    """Interruptible leases that may be preempted: started, and the last holding on each of their slots."""
    pre_rows = list(
        Lease.objects.filter(
            state__in=HOLDING_STATES, job__mode=JobMode.INTERRUPTIBLE, starts_at__lte=now, ends_at__gt=now
        ).values_list("pk", "node_id", "price_micros", "gpu_slots", "ends_at", "cpu_cores", "ram_gb", "disk_gb")
    )
    pos, holdings = slots.pos, slots.holdings
    pre = [
        r
        for r in pre_rows
        if r[1] in pos and all(holdings.get((pos[r[1]], s)) == r[4].timestamp() for s in r[3] if s < slots.max_slots)
    ]
    return engine.Preemptible(
        lease_ids=np.array([r[0] for r in pre], dtype=np.int64),
        node_idx=np.array([pos[r[1]] for r in pre], dtype=np.int64),
        bid=np.array([r[2] for r in pre], dtype=float),
        gpu_count=np.array([len(r[3]) for r in pre], dtype=np.int64),
        slots=[list(r[3]) for r in pre],
        resources=np.array([r[5:8] for r in pre], dtype=float).reshape(-1, 3).T,
    )


def _pending_job_columns(*, job_limit: int | None, job_ids: list[int] | None) -> dict[str, list[Any]]:
    """Pending jobs in submission order: the requirements and terms columns JobSpec names, read column-wise."""
    qs = Job.objects.filter(state=JobState.PENDING).order_by("created_at", "pk")
    if job_ids is not None:
        qs = qs.filter(pk__in=job_ids)
    names = ("pk", "customer_id", "created_at", *SNAPSHOT_COLUMNS)
    job_rows = list((qs[:job_limit] if job_limit else qs).values_list(*names))
    return {name: [r[i] for r in job_rows] for i, name in enumerate(names)}


def snapshot_take(*, now: datetime, job_limit: int | None = None, job_ids: list[int] | None = None) -> Snapshot:
    """Read pending jobs, free capacity and fair-share usage into engine arrays."""
    models, model_index = _models_table()
    nodes, node_ids, slots = _nodes_table(now=now, models=models, model_index=model_index)
    preemptible = _preemptible_table(now=now, slots=slots)
    col = _pending_job_columns(job_limit=job_limit, job_ids=job_ids)
    jobs = _jobs_table(col=col, now=now, models=models, model_index=model_index, node_pos=slots.pos)
    return Snapshot(now, jobs, nodes, models, preemptible, col["pk"], node_ids)


def _allowed_models(*, job_ids: list[int], models: engine.Models, model_index: dict[int, int]) -> np.ndarray:
    """(jobs × models) booleans: every model, or only the ones a job names."""
    m = len(job_ids)
    jpos = {pk: i for i, pk in enumerate(job_ids)}
    allowed_models = np.ones((m, max(models.count, 1)), dtype=bool)
    constrained: dict[int, list[int]] = {}
    if m:
        through = Job.gpu_models.through
        for job_id, model_id in through.objects.filter(job__state=JobState.PENDING).values_list(
            "job_id", "gpumodel_id"
        ):
            if job_id in jpos and model_id in model_index:
                constrained.setdefault(jpos[job_id], []).append(model_index[model_id])
        for i, idx in constrained.items():
            allowed_models[i] = False
            allowed_models[i, idx] = True
    return allowed_models


def _allowed_regions(wanted_regions: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(jobs × regions) booleans (every region when a job names none) and each job's first named region (-1)."""
    m = len(wanted_regions)
    region_index = {r: i for i, r in enumerate(REGIONS)}
    allowed_regions = np.ones((m, len(REGIONS)), dtype=bool)
    pref_region = np.full(m, -1, dtype=np.int64)
    for i, wanted in enumerate(wanted_regions):
        regions = [region_index[x] for x in (wanted or []) if x in region_index]
        if wanted:
            allowed_regions[i] = False
            allowed_regions[i, regions] = True
            pref_region[i] = regions[0] if regions else -1
    return allowed_regions, pref_region


def _jobs_table(
    *,
    col: dict[str, list[Any]],
    now: datetime,
    models: engine.Models,
    model_index: dict[int, int],
    node_pos: dict[int, int],
) -> engine.Jobs:
    """The engine's job arrays from the snapshot's columns (one entry per pending job, in submission order)."""
    nowf = now.timestamp()
    job_ids = col["pk"]
    allowed_models = _allowed_models(job_ids=job_ids, models=models, model_index=model_index)
    allowed_regions, pref_region = _allowed_regions(col["regions"])
    modes = col["mode"]
    mode = np.array([MODE_CODE.get(x, 0) for x in modes], dtype=np.int64)
    price_limit = np.array(
        [
            float(bid if bid is not None else 0)
            if md == JobMode.INTERRUPTIBLE
            else float(ask if ask is not None else np.inf)
            for md, ask, bid in zip(modes, col["max_price_micros"], col["bid_micros"], strict=True)
        ],
        dtype=float,
    )
    start = np.array([max(_epoch(e, nowf), nowf) for e in col["earliest_start"]], dtype=float)
    duration = np.array(col["duration_seconds"], dtype=float)
    gpu_count = np.array(col["gpu_count"], dtype=np.int64)
    order = _priority(col=col, now=now, mode=mode, price_limit=price_limit, demand=gpu_count * duration / 3600.0)

    def num(name: str) -> np.ndarray:
        return np.array([float(v) if v is not None else 0.0 for v in col[name]], dtype=float)

    return engine.Jobs(
        ids=np.array(job_ids, dtype=np.int64),
        gpu_count=gpu_count,
        min_vram=num("min_gpu_ram"),
        allowed_models=allowed_models,
        min_cc=num("min_compute_cap"),
        min_tier=np.array([TIER_RANK.get(t, 0) if t else 0 for t in col["min_tier"]], dtype=np.int64),
        allowed_regions=allowed_regions,
        pref_region=pref_region,
        min_reliability=num("min_reliability"),
        verified_only=np.array(col["verified_only"], dtype=bool),
        min_inet=num("min_inet_down"),
        min_cpu_per_gpu=num("min_cpu_cores_per_gpu"),
        min_ram_per_gpu=num("min_ram_gb_per_gpu"),
        min_disk_per_gpu=num("min_disk_gb_per_gpu"),
        mode=mode,
        price_limit=price_limit,
        start=start,
        end=start + duration,
        order=order,
        prefer=np.array([PLACEMENT_CODE.get(p, 0) for p in col["placement"]], dtype=np.int64),
        pin=np.array([-1 if n is None else node_pos.get(n, -2) for n in col["node_id"]], dtype=np.int64),
    )


def _priority(
    *, col: dict[str, list[Any]], now: datetime, mode: np.ndarray, price_limit: np.ndarray, demand: np.ndarray
) -> np.ndarray:
    """Fair share: decayed GPU-hours per customer from leases that overlapped the last 7 half-lives."""
    nowf = now.timestamp()
    half_life = float(getattr(settings, "RIGSHIFT_FAIRSHARE_HALF_LIFE_S", 24 * 3600))
    since = now - timedelta(seconds=7 * half_life)
    lease_rows = Lease.objects.filter(activated_at__isnull=False, ends_at__gt=since).values_list(
        "job__customer_id", "activated_at", "ended_at", "ends_at", "gpu_count"
    )
    spans = [(c, _epoch(a, nowf), (e or min(end, now)).timestamp(), g) for c, a, e, end, g in lease_rows]
    usage_by_customer = decayed_usage(spans=spans, now=nowf, half_life_s=half_life)
    return priority_order(
        usage=np.array([usage_by_customer.get(c, 0.0) for c in col["customer_id"]], dtype=float),
        submitted=np.array([t.timestamp() for t in col["created_at"]], dtype=float),
        mode=mode,
        bid=price_limit,
        customer=np.array(col["customer_id"], dtype=np.int64),
        demand_gpu_hours=demand,
    )


def constrained_forecast(*, nodes: engine.Nodes, n_models: int, now: datetime) -> np.ndarray | None:
    """The scarcity forecast (broker/engine/scarcity.py): GPUs of model- or region-constrained bookings in
    the last `RIGSHIFT_SCARCITY_WINDOW_S` (default 1 h), each spread evenly over the (model, region) groups
    it allows, smoothed towards each group's share of the listed GPUs, scaled to the next
    `RIGSHIFT_SCARCITY_HORIZON_S` (default 1 h). None when nothing constrained was booked."""
    window = float(getattr(settings, "RIGSHIFT_SCARCITY_WINDOW_S", 3600))
    horizon = float(getattr(settings, "RIGSHIFT_SCARCITY_HORIZON_S", 3600))
    since = now - timedelta(seconds=window)
    recent = list(Job.objects.filter(created_at__gte=since).values_list("pk", "gpu_count", "regions"))
    if not recent or nodes.count == 0:
        return None
    model_pks = list(GPUModel.objects.order_by("pk").values_list("pk", flat=True))
    index = {pk: i for i, pk in enumerate(model_pks)}
    allowed: dict[int, list[int]] = {}
    through = Job.gpu_models.through
    for job_id, model_id in through.objects.filter(job__created_at__gte=since).values_list("job_id", "gpumodel_id"):
        if model_id in index:
            allowed.setdefault(job_id, []).append(index[model_id])
    region_index = {r: i for i, r in enumerate(REGIONS)}
    out = np.zeros((max(n_models, 1), len(REGIONS)))
    for pk, gpus, regions in recent:
        wanted = [region_index[r] for r in (regions or []) if r in region_index]
        if pk not in allowed and not wanted:
            continue  # unconstrained
        models = allowed.get(pk) or list(range(n_models))
        cells = [(m, r) for m in models for r in (wanted or range(len(REGIONS)))]
        for m, r in cells:
            out[m, r] += gpus / len(cells)
    if not out.any():
        return None
    group_gpus = np.zeros_like(out)
    np.add.at(group_gpus, (nodes.model, np.minimum(nodes.region, len(REGIONS) - 1)), nodes.gpu_count)
    return forecast_groups(out, group_gpus) * (horizon / window)


def _expire_pending(*, now: datetime) -> int:
    """Pending jobs whose start window has passed fail (their escrow is released by the booking side's
    cancel rules are not ours: we release the whole hold, as nothing ran)."""
    expired = list(
        Job.objects.filter(state=JobState.PENDING, latest_start__lt=now).order_by("pk").values_list("pk", flat=True)
    )
    count = 0
    for job_id in expired:
        with transaction.atomic():
            if job_transition(
                job_id=job_id,
                from_states=[JobState.PENDING],
                to_state=JobState.FAILED,
                note="start window passed without a match",
                pending_reason="",
            ):
                count += 1
                _job_release_all(job_id=job_id)
    return count


def _job_release_all(*, job_id: int) -> None:
    job = Job.objects.select_related("customer__user").get(pk=job_id)
    hold = job.held_micros
    if hold > 0 and Job.objects.filter(pk=job_id, held_micros=hold).update(held_micros=0):
        from billing.services.wallet import escrow_release

        escrow_release(
            user=job.customer.user,
            amount_micros=hold,
            key=f"job:{job_id}:escrow-release-final",
            memo=f"Job {job_id} expired unmatched",
        )


def match_round_run(*, shard: str = "default", now: datetime | None = None, wait_s: float = 5.0) -> MatchRound:
    """Run one round for `shard` under its matcher lock. Returns the saved MatchRound, or an unsaved one
    whose note says why nothing ran (paused, or another matcher holds the lock)."""
    if matching_paused():
        return MatchRound(shard=shard, started_at=timezone.now(), note="paused")
    with shard_lock(shard=shard, wait_s=wait_s) as acquired:
        if not acquired:
            return MatchRound(shard=shard, started_at=timezone.now(), note="skipped: another matcher holds the lock")
        return _round(shard=shard, now=now)


def _round(*, shard: str, now: datetime | None) -> MatchRound:
    """One round at ONE time `now` (snapshot, preemption ends, lease starts). Every round is recorded,
    failed or not: a round that raises is saved with status `failed` and its error (and logged), and
    `/healthz` and the metrics read the latest successful one."""
    t0 = time.perf_counter()
    now = now or timezone.now()
    rnd = MatchRound(shard=shard, started_at=timezone.now())
    try:
        _round_body(rnd=rnd, now=now, t0=t0)
    except Exception as exc:
        log.exception("match round failed (shard %s)", shard)
        rnd.status = "failed"
        rnd.error = f"{type(exc).__name__}: {exc}"[:2000]
        rnd.total_ms = (time.perf_counter() - t0) * 1000
    rnd.finished_at = timezone.now()
    rnd.save()
    return rnd


def _round_body(*, rnd: MatchRound, now: datetime, t0: float) -> None:
    _expire_pending(now=now)
    quarantined = _quarantine_unprocessable(now=now)
    snap = snapshot_take(now=now)
    t1 = time.perf_counter()
    result = engine.match(
        jobs=snap.jobs,
        nodes=snap.nodes,
        models=snap.models,
        now=now.timestamp(),
        preemptible=snap.preemptible,
        forecast=constrained_forecast(nodes=snap.nodes, n_models=snap.models.count, now=now),
    )
    t2 = time.perf_counter()
    commit_phases: dict[str, float] = {}
    placed, preempted, dropped, set_aside = _commit(snap=snap, result=result, phases=commit_phases)
    t3 = time.perf_counter()
    reasons = Counter(result.reasons.values())
    if dropped:
        reasons["changed_during_round"] += dropped
    if set_aside:
        reasons["quarantined"] += set_aside
    rnd.jobs_considered = snap.jobs.count
    rnd.nodes_considered = snap.nodes.count
    rnd.placed, rnd.preempted, rnd.quarantined = placed, preempted, quarantined + set_aside
    rnd.snapshot_ms, rnd.engine_ms = (t1 - t0) * 1000, (t2 - t1) * 1000
    rnd.commit_ms, rnd.total_ms = (t3 - t2) * 1000, (t3 - t0) * 1000
    rnd.unplaced_reasons = dict(reasons)
    rnd.phases = {
        **{f"engine_{k}": round(v, 2) for k, v in result.timings_ms.items()},
        **commit_phases,
        **_jsonable(result.stats),
    }


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, str | int | float) else str(v)) for k, v in d.items()}


# --- quarantine: one bad job never stops the round ---------------------------------------------------------

MAX_DURATION_S = 720 * 3600
# What one placement's commit can raise: the exclusion constraint / a row refused (PostgreSQL), the overlap
# re-check (SQLite, Conflict), a value the database cannot store.
COMMIT_ERRORS = (DatabaseError, DomainError, ValueError, OverflowError)


def job_quarantine(*, job_id: int, reason: str) -> bool:
    """pending → quarantined with its reason (shown to the customer and in the console); False if the job
    is no longer pending. The customer may cancel it (its whole hold is released); staff may re-queue it."""
    return job_transition(
        job_id=job_id,
        from_states=[JobState.PENDING],
        to_state=JobState.QUARANTINED,
        note=f"quarantined by the match round: {reason}",
        quarantine_reason=reason[:2000],
        pending_reason="",
    )


def _quarantine_unprocessable(*, now: datetime) -> int:
    """Pending jobs no round can process (booked before the horizon existed: a start window beyond the booking
    horizon, whose lease end is past year 9999; or a duration of zero, or over the maximum) are set aside."""
    days = int(settings.RIGSHIFT_BOOKING_HORIZON_DAYS)
    try:
        horizon = now + timedelta(days=days)
    except OverflowError:
        horizon = datetime.max.replace(tzinfo=UTC)
    bad = Job.objects.filter(state=JobState.PENDING).filter(
        Q(earliest_start__gt=horizon) | Q(duration_seconds__lte=0) | Q(duration_seconds__gt=MAX_DURATION_S)
    )
    count = 0
    for job_id, earliest, duration in bad.values_list("pk", "earliest_start", "duration_seconds"):
        if duration <= 0 or duration > MAX_DURATION_S:
            reason = f"its duration ({duration} s) is not between 1 s and {MAX_DURATION_S // 3600} hours."
        else:
            reason = (
                f"its start window opens {earliest:%Y-%m-%d}, beyond the booking horizon of {days} days; "
                "cancel it (the whole hold is released) and book again within the horizon."
            )
        count += int(job_quarantine(job_id=job_id, reason=reason))
    return count


def _commit(*, snap: Snapshot, result: engine.Result, phases: dict[str, float]) -> tuple[int, int, int, int]:
    """Write the round: preemptions, leases + slots, jobs → matched, pending reasons. Returns (placed,
    preempted, dropped, quarantined).

    All placements go in ONE transaction. If it fails (a placement's slots conflict, a row that cannot be
    written), each placement is retried in its own transaction and the ones that still fail are quarantined
    with the error, so everyone else is matched in the same round. When every retry fails the cause is not a
    placement (the database is away, say): the round fails and nothing is quarantined."""
    set_aside: dict[int, str] = {}
    items: list[tuple[engine.Placement, LeasePlan]] = []
    nowf, needs = snap.now.timestamp(), snap.jobs.resources_need()
    for p in result.placements:
        try:
            items.append((p, _plan(snap=snap, p=p, nowf=nowf, needs=needs)))
        except (ValueError, OverflowError, OSError) as exc:
            set_aside[snap.job_ids[p.job_idx]] = f"its lease period cannot be represented ({exc})."
    try:
        with transaction.atomic():
            placed, preempted, dropped = _commit_batch(snap=snap, items=items, phases=phases)
    except COMMIT_ERRORS as batch_exc:
        log.warning("match round commit failed (%s); retrying each placement on its own", batch_exc)
        placed = preempted = dropped = 0
        failures: list[Exception] = []
        for item in items:
            try:
                with transaction.atomic():
                    a, b, c = _commit_batch(snap=snap, items=[item], phases=phases)
                placed, preempted, dropped = placed + a, preempted + b, dropped + c
            except COMMIT_ERRORS as exc:
                failures.append(exc)
                set_aside[item[1].job_id] = f"its placement could not be committed ({type(exc).__name__}: {exc})"[:2000]
        if len(items) > 1 and len(failures) == len(items):
            raise
    tick = time.perf_counter()
    _pending_reasons_write(snap=snap, result=result)
    phases["commit_pending_reasons"] = round((time.perf_counter() - tick) * 1000, 2)
    quarantined = sum(int(job_quarantine(job_id=job_id, reason=why)) for job_id, why in set_aside.items())
    return placed, preempted, dropped, quarantined


def _commit_batch(
    *, snap: Snapshot, items: list[tuple[engine.Placement, LeasePlan]], phases: dict[str, float]
) -> tuple[int, int, int]:
    """One transaction's worth (the caller opens it): claim the jobs still pending on nodes still able to take
    leases, end the preempted leases at the round's time, insert the leases and their events."""
    tick = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tick
        t = time.perf_counter()
        phases[f"commit_{name}"] = round((t - tick) * 1000, 2)
        tick = t

    now = snap.now
    # Nodes still able to take leases (re-read at commit: one may have gone offline since the snapshot).
    ok_nodes = set(
        Node.objects.filter(listed=True, cordoned=False, status=NodeStatus.ONLINE).values_list("pk", flat=True)
    )
    on_live_nodes = [(p, plan) for p, plan in items if plan.node_id in ok_nodes]
    fitting = {id(p) for p in _fit_resources(snap=snap, placements=[p for p, _ in on_live_nodes])}
    on_live_nodes = [(p, plan) for p, plan in on_live_nodes if id(p) in fitting]
    still = _jobs_claim(job_ids=sorted(plan.job_id for _, plan in on_live_nodes), now=now)
    lap("nodes_check_jobs_claim")
    keep = [(p, plan) for p, plan in on_live_nodes if plan.job_id in still]
    dropped = len(items) - len(keep)
    preempted = 0
    for p, _ in keep:
        for lease_id in p.preempts:
            # Ends exactly at the round's time, where the displacing lease starts (no overlap, no gap).
            preempted += int(lease_preempt(lease_id=lease_id, reason="preempted by on-demand work", at=now))
    plans = [plan for _, plan in keep]
    lap("preempt_plan")
    leases_create_bulk(plans=plans, timings=phases)
    lap("leases_slots")
    _events_insert(
        rows=[
            (
                pl.job_id,
                f"matched: {len(pl.gpu_slots)} GPU(s) on node {pl.node_id}. {pl.placement_note}",
            )
            for pl in plans
        ],
        now=now,
    )
    lap("events")
    return len(plans), preempted, dropped


def _pending_reasons_write(*, snap: Snapshot, result: engine.Result) -> None:
    by_reason: dict[str, list[int]] = {}
    for j, code in result.reasons.items():
        by_reason.setdefault(code, []).append(snap.job_ids[j])
    for code, job_ids in by_reason.items():
        text = REASON_TEXT.get(code, code)
        for lo in range(0, len(job_ids), 5000):
            Job.objects.filter(pk__in=job_ids[lo : lo + 5000], state=JobState.PENDING).exclude(
                pending_reason=text
            ).update(pending_reason=text)


def _plan(*, snap: Snapshot, p: engine.Placement, nowf: float, needs: np.ndarray) -> LeasePlan:
    """The lease of one placement, starting no earlier than the round's one time `snap.now` (raises on an
    unrepresentable period, e.g. past year 9999)."""
    start = max(float(snap.jobs.start[p.job_idx]), nowf)
    end = start + float(snap.jobs.end[p.job_idx] - snap.jobs.start[p.job_idx])
    need = needs[:, p.job_idx]
    return LeasePlan(
        job_id=snap.job_ids[p.job_idx],
        node_id=snap.node_ids[p.node_idx],
        gpu_slots=p.slots,
        price_micros=p.price,
        starts_at=snap.now if start == nowf else datetime.fromtimestamp(start, tz=UTC),
        ends_at=datetime.fromtimestamp(end, tz=UTC),
        cpu_cores=int(need[0]),
        ram_gb=int(need[1]),
        disk_gb=int(need[2]),
        placement_note=_placement_note(snap=snap, p=p),
    )


def _placement_note(*, snap: Snapshot, p: engine.Placement) -> str:
    j = p.job_idx
    return _note(p.why, p.price, float(snap.jobs.price_limit[j]), bool(snap.jobs.mode[j] == engine.MODE_INTERRUPTIBLE))


@functools.lru_cache(maxsize=4096)
def _note(why: str, price_micros: int, limit: float, interruptible: bool) -> str:
    text = WHY_TEXT.get(why, "")
    price = format_rate(micros=price_micros, unit="GPU-hour")
    if interruptible:
        return f"{text} Price {price} (your bid)."
    cap = f"; your max {format_rate(micros=int(limit), unit='GPU-hour')}" if np.isfinite(limit) else ""
    return f"{text} Price {price}{cap}."


def _fit_resources(*, snap: Snapshot, placements: list[engine.Placement]) -> list[engine.Placement]:
    """The database-side resource check: placements whose node no longer has their CPU, RAM or disk free
    (a manual assignment since the snapshot) are dropped; their jobs stay pending for the next round."""
    nowf = snap.now.timestamp()
    needs = snap.jobs.resources_need()
    needy = np.asarray((needs > 0).any(axis=0), dtype=bool)
    plans = [_plan(snap=snap, p=p, nowf=nowf, needs=needs) for p in placements if needy[p.job_idx]]
    if not plans:
        return placements
    ignore = [lease_id for p in placements for lease_id in p.preempts]
    _kept, refused = leases_fit_node_resources(plans=plans, ignore_lease_ids=ignore)
    if not refused:
        return placements
    dropped = {pl.job_id for pl in refused}
    log.warning("match round: %d placement(s) dropped, node resources taken since the snapshot", len(dropped))
    return [p for p in placements if snap.job_ids[p.job_idx] not in dropped]


def _jobs_claim(*, job_ids: list[int], now: datetime) -> set[int]:
    """pending → matched for the placed jobs still pending, in one conditional UPDATE per chunk (row
    locks taken by the UPDATE itself, in id order); returns the ids it moved. The round's JobEvents
    record the transitions (a bulk form of `job_transition`, same conditional rule)."""
    moved: set[int] = set()
    connection = transaction.get_connection()
    for lo in range(0, len(job_ids), 5000):
        chunk = job_ids[lo : lo + 5000]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE broker_job SET state = %s, pending_reason = '', updated_at = %s "
                    "WHERE id = ANY(%s) AND state = %s RETURNING id",
                    [JobState.MATCHED.value, now, chunk, JobState.PENDING.value],
                )
                moved.update(row[0] for row in cursor.fetchall())
        else:
            pending = set(
                Job.objects.filter(pk__in=chunk, state=JobState.PENDING).values_list("pk", flat=True)
            )  # sqlite: the round's write transaction (BEGIN IMMEDIATE) already excludes other writers
            Job.objects.filter(pk__in=pending, state=JobState.PENDING).update(
                state=JobState.MATCHED, pending_reason="", updated_at=now
            )
            moved |= pending
    return moved


def _events_insert(*, rows: list[tuple[int, str]], now: datetime) -> None:
    """JobEvents pending → matched for the round (COPY on PostgreSQL); their customers are told."""
    _events_write(rows=rows, now=now)
    job_steps_notify(job_ids=[job_id for job_id, _ in rows], to_state=JobState.MATCHED, at=now)


def _events_write(*, rows: list[tuple[int, str]], now: datetime) -> None:
    connection = transaction.get_connection()
    if connection.vendor == "postgresql" and rows:
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy("COPY broker_jobevent (job_id, at, from_state, to_state, note) FROM STDIN") as copy,
        ):
            for job_id, note in rows:
                copy.write_row((job_id, now, JobState.PENDING.value, JobState.MATCHED.value, note[:500]))
        return
    JobEvent.objects.bulk_create(
        [
            JobEvent(job_id=job_id, at=now, from_state=JobState.PENDING, to_state=JobState.MATCHED, note=note[:500])
            for job_id, note in rows
        ],
        batch_size=500,
    )
