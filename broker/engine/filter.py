"""Hard-constraint filter: a (jobs × nodes) boolean feasibility matrix, built with numpy.

Catalog constraints (model, VRAM, compute capability, tier) and region are folded into one
(job × model·region) table first and gathered per node, so the wide matrix costs one gather plus
one comparison per constraint a job actually sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from broker.engine.types import REASONS, BoolA, IntA, Jobs, Models, Nodes

CHUNK = 2048


def _combo_table(jobs: Jobs, models: Models, rows: IntA, n_regions: int) -> tuple[BoolA, BoolA]:
    """Per job row: feasibility per model (catalog constraints) and per region."""
    allowed = jobs.allowed_models[rows]
    jm_model = allowed
    jm_vram = models.vram[None, :] >= jobs.min_vram[rows, None]
    jm_cc = models.cc[None, :] >= jobs.min_cc[rows, None]
    jm_tier = models.tier[None, :] >= jobs.min_tier[rows, None]
    jr = jobs.allowed_regions[rows, :n_regions]
    return np.stack([jm_model, jm_vram, jm_cc, jm_tier]), jr


def _steps(
    jobs: Jobs, nodes: Nodes, models: Models, rows: IntA, now: float
) -> Iterator[tuple[str, Callable[[], BoolA] | None]]:
    """Yield (reason, mask-maker) in REASONS order; a None maker means 'no job in rows sets this'."""
    n_regions = int(max(jobs.allowed_regions.shape[1], (nodes.region.max() + 1) if nodes.count else 1))
    jm, jr = _combo_table(jobs, models, rows, n_regions)
    g = jobs.gpu_count[rows]
    yield "no_node_with_gpu_count", lambda: nodes.gpu_count[None, :] >= g[:, None]
    yield "gpu_model", lambda: jm[0][:, nodes.model]
    yield "gpu_ram", lambda: jm[1][:, nodes.model]
    yield "compute_capability", lambda: jm[2][:, nodes.model]
    yield "tier", lambda: jm[3][:, nodes.model]
    yield "region", lambda: jr[:, nodes.region]

    def threshold(node_vals: np.ndarray, job_vals: np.ndarray) -> Callable[[], BoolA] | None:
        if not (job_vals > 0).any():
            return None
        return lambda: node_vals[None, :] >= job_vals[:, None]

    vo = jobs.verified_only[rows]
    yield "verified", (lambda: nodes.verified[None, :] | ~vo[:, None]) if vo.any() else None
    yield "reliability", threshold(nodes.reliability, jobs.min_reliability[rows])
    yield "inet", threshold(nodes.inet, jobs.min_inet[rows])
    yield "cpu", threshold(nodes.cpu_per_gpu, jobs.min_cpu_per_gpu[rows])
    yield "ram", threshold(nodes.ram_per_gpu, jobs.min_ram_per_gpu[rows])
    yield "disk", threshold(nodes.disk_per_gpu, jobs.min_disk_per_gpu[rows])
    start = np.maximum(jobs.start[rows], now)
    end = jobs.end[rows] + (start - jobs.start[rows])
    windowed = bool(np.isfinite(nodes.avail_from).any() or np.isfinite(nodes.avail_until).any())
    yield (
        "availability_window",
        (lambda: (nodes.avail_from[None, :] <= start[:, None]) & (nodes.avail_until[None, :] >= end[:, None]))
        if windowed
        else None,
    )
    interruptible = jobs.mode[rows] == 1
    limit = jobs.price_limit[rows]

    def price() -> BoolA:
        # On-demand / reserved pay the ask (never more than max price); interruptible bid >= min bid.
        ask_ok = nodes.ask[None, :] <= limit[:, None]
        if interruptible.any():
            bid_ok = nodes.min_bid[None, :] <= limit[:, None]
            ask_ok = np.where(interruptible[:, None], bid_ok, ask_ok)
        return ask_ok

    yield "price", price
    yield "capacity", lambda: free_at(nodes, start) >= g[:, None]


def free_at(nodes: Nodes, start: np.ndarray) -> IntA:
    """(len(start) × N) number of slots free at each start time (grouped by distinct start)."""
    uniq, inverse = np.unique(start, return_inverse=True)
    per = np.stack([(nodes.slot_free_at <= t).sum(axis=1) for t in uniq]) if len(uniq) else np.zeros((0, nodes.count))
    counts: IntA = per[inverse].astype(np.int64)
    return counts


def feasible(jobs: Jobs, nodes: Nodes, models: Models, *, now: float, with_capacity: bool = True) -> BoolA:
    """The (J × N) matrix of job/node pairs meeting every hard constraint (and, by default, free capacity)."""
    out = np.empty((jobs.count, nodes.count), dtype=bool)
    for lo in range(0, jobs.count, CHUNK):
        rows = np.arange(lo, min(lo + CHUNK, jobs.count))
        acc: BoolA | None = None
        for reason, maker in _steps(jobs, nodes, models, rows, now):
            if maker is None or (reason == "capacity" and not with_capacity):
                continue
            mask = maker()
            acc = mask.copy() if acc is None else np.logical_and(acc, mask, out=acc)
        out[rows] = acc if acc is not None else True
    return out


def first_reasons(jobs: Jobs, nodes: Nodes, models: Models, rows: IntA, *, now: float) -> list[str]:
    """For each job row, the first constraint (in REASONS order) that empties its candidate set;
    'contention' when all constraints leave candidates (the GPUs went to other jobs this round)."""
    if len(rows) == 0:
        return []
    if nodes.count == 0:
        return ["no_node_with_gpu_count"] * len(rows)
    result = np.full(len(rows), len(REASONS) - 1)
    for lo in range(0, len(rows), CHUNK):
        sub = rows[lo : lo + CHUNK]
        acc = np.ones((len(sub), nodes.count), dtype=bool)
        decided = np.zeros(len(sub), dtype=bool)
        for reason, maker in _steps(jobs, nodes, models, sub, now):
            if maker is None:
                continue
            np.logical_and(acc, maker(), out=acc)
            empty = ~acc.any(axis=1) & ~decided
            result[lo : lo + CHUNK][empty] = REASONS.index(reason)
            decided |= empty
    return [REASONS[i] for i in result]
