"""The matching engine: a pure module (numpy/scipy, no Django). Arrays in, assignments out.

    result = match(jobs=Jobs(...), nodes=Nodes(...), models=Models(...), now=epoch_seconds)

See filter.py (hard constraints), assign.py (greedy + max-flow augmentation + preemption),
fairshare.py (priority order) and optimal.py (the upper bound the benchmark compares with).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from broker.engine.assign import Assigner, _row_classes
from broker.engine.filter import feasible, first_reasons
from broker.engine.scarcity import scarcity_cost
from broker.engine.types import (
    MODE_INTERRUPTIBLE,
    MODE_ON_DEMAND,
    MODE_RESERVED,
    PLACE_CHEAPEST,
    PLACE_PERF_PER_DOLLAR,
    PLACE_RELIABLE,
    REASONS,
    ClassRows,
    Jobs,
    Models,
    Nodes,
    Placement,
    Preemptible,
    Result,
    Weights,
)

__all__ = [
    "MODE_INTERRUPTIBLE",
    "MODE_ON_DEMAND",
    "MODE_RESERVED",
    "PLACE_CHEAPEST",
    "PLACE_PERF_PER_DOLLAR",
    "PLACE_RELIABLE",
    "REASONS",
    "Jobs",
    "Models",
    "Nodes",
    "Placement",
    "Preemptible",
    "Result",
    "Weights",
    "match",
]


def match(
    *,
    jobs: Jobs,
    nodes: Nodes,
    models: Models,
    now: float,
    preemptible: Preemptible | None = None,
    weights: Weights | None = None,
    optimise: bool = True,
    forecast: np.ndarray | None = None,
) -> Result:
    """Assign pending jobs to free GPU slots. Never oversubscribes a slot; every placement meets
    every hard constraint. Returns placements (with slots and price) and a reason per unplaced job."""
    w = weights or Weights()
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    req_class, reps = requirement_classes(jobs, nodes, now=now)
    feas_reps = feasible(_subset(jobs, reps), nodes, models, now=now)
    feas = ClassRows(feas_reps, req_class)  # per class: never a jobs × nodes matrix
    t["filter"] = (time.perf_counter() - t0) * 1000
    ts = time.perf_counter()
    scarcity = (
        scarcity_cost(jobs=jobs, nodes=nodes, feas_reps=feas_reps, req_class=req_class, now=now, forecast=forecast)
        if w.scarcity
        else None
    )
    t["scarcity"] = (time.perf_counter() - ts) * 1000
    t1 = time.perf_counter()
    if nodes.gap_until is not None:
        nodes = dataclasses.replace(nodes, gap_until=nodes.gap_until.copy())  # the round uses gaps up
    free_at = nodes.slot_free_at.copy()
    assigner = Assigner(
        jobs, nodes, feas, now=now, weights=w, slot_free_at=free_at, req_class=req_class, scarcity=scarcity
    )
    order = np.argsort(jobs.order, kind="stable")
    assigner.greedy(order)
    t["greedy"] = (time.perf_counter() - t1) * 1000
    t2 = time.perf_counter()
    if optimise:
        assigner.augment_singles()
        assigner.greedy(order)  # leftovers (multi-GPU) after re-routing
    t["optimise"] = (time.perf_counter() - t2) * 1000
    tb = time.perf_counter()
    _backfill(assigner, jobs, nodes, models, now, req_class, reps)
    t["backfill"] = (time.perf_counter() - tb) * 1000
    t3 = time.perf_counter()
    preempts = _preempt(assigner, jobs, nodes, models, now, req_class, reps, preemptible)
    t["preempt"] = (time.perf_counter() - t3) * 1000
    t4 = time.perf_counter()
    placements = []
    for j in np.flatnonzero(assigner.node_of >= 0).tolist():
        n = int(assigner.node_of[j])
        price = int(jobs.price_limit[j]) if jobs.mode[j] == MODE_INTERRUPTIBLE else int(nodes.ask[n])
        why = "preempt" if j in preempts else assigner.why_of(j)
        placements.append(Placement(j, n, assigner.slots_of[j], price, preempts.get(j, []), why))
    unplaced = np.flatnonzero(assigner.node_of < 0)
    reasons = _reasons(jobs, nodes, models, now, req_class, reps, unplaced)
    t["reasons"] = (time.perf_counter() - t4) * 1000
    return Result(placements=placements, reasons=reasons, timings_ms=t, stats=assigner.stats)


def _backfill(
    assigner: Assigner, jobs: Jobs, nodes: Nodes, models: Models, now: float, req_class: np.ndarray, reps: np.ndarray
) -> None:
    """Jobs starting now that are still unplaced may use the gaps before later holdings (backfill)."""
    gap = nodes.gap_until
    if gap is None or not np.isfinite(gap).any():
        return
    waiting = np.flatnonzero((assigner.node_of < 0) & (assigner.start <= now))
    if len(waiting):
        static = _static_rows(jobs, nodes, models, now, req_class, reps, waiting)
        waiting = waiting[np.argsort(jobs.order[waiting], kind="stable")]
        assigner.stats["backfilled"] = assigner.backfill(waiting, static)


def _preempt(
    assigner: Assigner,
    jobs: Jobs,
    nodes: Nodes,
    models: Models,
    now: float,
    req_class: np.ndarray,
    reps: np.ndarray,
    preemptible: Preemptible | None,
) -> dict[int, list[int]]:
    """On-demand jobs still blocked may preempt the lowest-bid interruptible leases on a node."""
    if preemptible is None or not len(preemptible.lease_ids):
        return {}
    unplaced_od = np.flatnonzero((assigner.node_of < 0) & (jobs.mode != MODE_INTERRUPTIBLE))
    if not len(unplaced_od):
        return {}
    static = _static_rows(jobs, nodes, models, now, req_class, reps, unplaced_od)
    return assigner.preempt(preemptible, static)


def _static_rows(
    jobs: Jobs, nodes: Nodes, models: Models, now: float, req_class: np.ndarray, reps: np.ndarray, rows: np.ndarray
) -> ClassRows:
    """Feasibility without capacity for the jobs `rows` (filtered once per requirement class; other jobs'
    rows are not meaningful)."""
    classes = np.unique(req_class[rows])
    matrix = feasible(_subset(jobs, reps[classes]), nodes, models, now=now, with_capacity=False)
    lookup = np.zeros(len(reps), dtype=np.int64)
    lookup[classes] = np.arange(len(classes))
    return ClassRows(matrix, lookup[req_class])


def _reasons(
    jobs: Jobs, nodes: Nodes, models: Models, now: float, req_class: np.ndarray, reps: np.ndarray, rows: np.ndarray
) -> dict[int, str]:
    """The first constraint that empties each unplaced job's candidates: computed once per requirement
    class (jobs of a class have the same filter inputs)."""
    if len(rows) == 0:
        return {}
    classes, inverse = np.unique(req_class[rows], return_inverse=True)
    per_class = first_reasons(jobs, nodes, models, reps[classes], now=now)
    return {int(j): per_class[int(k)] for j, k in zip(rows.tolist(), inverse.ravel().tolist(), strict=True)}


def requirement_classes(jobs: Jobs, nodes: Nodes, *, now: float) -> tuple[np.ndarray, np.ndarray]:
    """Jobs with identical requirements (everything the filter reads, plus the preferred region) have
    identical feasibility rows: filter one representative per class. Returns (class per job, reps)."""
    if jobs.count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    start = np.maximum(jobs.start, now)
    windowed = bool(np.isfinite(nodes.avail_from).any() or np.isfinite(nodes.avail_until).any())
    end = jobs.end + (start - jobs.start) if windowed else np.zeros(jobs.count)
    cols = [
        jobs.gpu_count,
        jobs.min_vram,
        jobs.min_cc,
        jobs.min_tier,
        jobs.min_reliability,
        jobs.verified_only,
        jobs.min_inet,
        jobs.min_cpu_per_gpu,
        jobs.min_ram_per_gpu,
        jobs.min_disk_per_gpu,
        jobs.mode,
        np.nan_to_num(jobs.price_limit, posinf=1e300),
        start,
        end,
        jobs.pref_region,
        jobs.prefer,
        jobs.pin,
    ]
    key = np.column_stack([np.asarray(c, dtype=float) for c in cols] + [jobs.allowed_models, jobs.allowed_regions])
    key = np.ascontiguousarray(key, dtype=np.float64) + 0.0  # normalise -0.0
    inverse, reps = _row_classes(key.view(np.uint8))
    return inverse, reps


def _subset(jobs: Jobs, rows: np.ndarray) -> Jobs:
    return Jobs(**{name: getattr(jobs, name)[rows] for name in jobs.__dataclass_fields__})
