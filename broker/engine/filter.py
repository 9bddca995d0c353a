"""Hard-constraint filter: a (jobs × nodes) boolean feasibility matrix, built with numpy.

Catalog constraints (model, VRAM, compute capability, tier) and region are folded into one
(job × model·region) table first and gathered per node, so the wide matrix costs one gather plus
one comparison per constraint a job actually sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from broker.engine.types import REASONS, BoolA, IntA, Jobs, Models, Nodes

CHUNK = 512


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
    # CPU, RAM and disk are consumable: the node's free total must cover GPUs × the per-GPU minimum.
    yield "cpu", threshold(nodes.cpu_free, g * jobs.min_cpu_per_gpu[rows])
    yield "ram", threshold(nodes.ram_free, g * jobs.min_ram_per_gpu[rows])
    yield "disk", threshold(nodes.disk_free, g * jobs.min_disk_per_gpu[rows])
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
    pin = jobs.pin[rows]
    yield "pinned_node", (lambda: _pin_mask(pin, nodes.count)) if (pin != -1).any() else None
    yield "capacity", lambda: free_at(nodes, start) >= g[:, None]


def _pin_mask(pin: IntA, n_nodes: int) -> BoolA:
    """Rows × nodes: a job booked on a node (pin >= 0) may only take that node; pin -2 (its node is gone)
    none; pin -1 any."""
    mask: BoolA = (pin[:, None] == -1) | (np.arange(n_nodes)[None, :] == pin[:, None])
    return mask


def free_at(nodes: Nodes, start: np.ndarray) -> IntA:
    """(len(start) × N) number of slots free at each start time (grouped by distinct start)."""
    uniq, inverse = np.unique(start, return_inverse=True)
    if len(uniq) == 0:
        return np.zeros((0, nodes.count), dtype=np.int64)
    per = np.stack([(nodes.slot_free_at <= t).sum(axis=1) for t in uniq])
    counts: IntA = per[inverse.ravel()].astype(np.int64)
    return counts


def _and_rows(acc: BoolA, rows: IntA, mask: BoolA) -> None:
    """acc[rows] &= mask (rows a subset)."""
    acc[rows] &= mask


def _thresholds(
    jobs: Jobs, nodes: Nodes, rows: IntA, g: IntA, *, with_capacity: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(node values, job minimums) pairs of the threshold constraints; the consumable CPU/RAM/disk only with
    capacity (preemption may free them)."""
    out = [(nodes.reliability, jobs.min_reliability[rows]), (nodes.inet, jobs.min_inet[rows])]
    if with_capacity:
        out += [
            (nodes.cpu_free, g * jobs.min_cpu_per_gpu[rows]),
            (nodes.ram_free, g * jobs.min_ram_per_gpu[rows]),
            (nodes.disk_free, g * jobs.min_disk_per_gpu[rows]),
        ]
    return out


def feasible(  # noqa: C901 — to split into named steps
    jobs: Jobs, nodes: Nodes, models: Models, *, now: float, with_capacity: bool = True
) -> BoolA:
    """The (J × N) matrix of job/node pairs meeting every hard constraint (and, by default, free capacity:
    free GPU slots and free CPU cores, RAM and disk).

    Fast path: catalog constraints and region are folded into one (job × model·region) table and
    gathered once per node; threshold constraints only touch the rows of jobs that set them."""
    n_nodes = nodes.count
    out = np.empty((jobs.count, n_nodes), dtype=bool)
    if n_nodes == 0 or jobs.count == 0:
        out[:] = False
        return out
    n_regions = int(max(jobs.allowed_regions.shape[1], nodes.region.max() + 1))
    node_combo = nodes.model * n_regions + nodes.region
    start_all = np.maximum(jobs.start, now)
    end_all = jobs.end + (start_all - jobs.start)
    windowed = bool(np.isfinite(nodes.avail_from).any() or np.isfinite(nodes.avail_until).any())
    all_verified = bool(nodes.verified.all())
    for lo in range(0, jobs.count, CHUNK):
        hi = min(lo + CHUNK, jobs.count)
        rows = np.arange(lo, hi)
        jm, jr = _combo_table(jobs, models, rows, n_regions)
        model_ok: BoolA = np.asarray(jm.all(axis=0))  # rows × M
        combo = (model_ok[:, :, None] & jr[:, None, :]).reshape(len(rows), -1)
        acc = np.ascontiguousarray(np.take(combo, node_combo, axis=1))
        g = jobs.gpu_count[rows]
        acc &= nodes.gpu_count[None, :] >= g[:, None]
        if not all_verified:
            vo = jobs.verified_only[rows]
            if vo.any():
                acc &= nodes.verified[None, :] | ~vo[:, None]
        for node_vals, job_vals in _thresholds(jobs, nodes, rows, g, with_capacity=with_capacity):
            sub = np.flatnonzero(job_vals > 0)
            if len(sub) * 4 > len(rows):  # many rows: one full pass (a 0 requirement passes every node)
                acc &= node_vals[None, :] >= np.where(job_vals > 0, job_vals, -np.inf)[:, None]
            elif len(sub):
                _and_rows(acc, sub, node_vals[None, :] >= job_vals[sub, None])
        start, end = start_all[rows], end_all[rows]
        if windowed:
            acc &= (nodes.avail_from[None, :] <= start[:, None]) & (nodes.avail_until[None, :] >= end[:, None])
        limit = jobs.price_limit[rows]
        interruptible = jobs.mode[rows] == 1
        if (~interruptible & np.isfinite(limit)).any():
            acc &= nodes.ask[None, :] <= np.where(interruptible, np.inf, limit)[:, None]
        if interruptible.any():
            acc &= nodes.min_bid[None, :] <= np.where(interruptible, limit, np.inf)[:, None]
        pin = jobs.pin[rows]
        if (pin != -1).any():
            acc &= _pin_mask(pin, n_nodes)
        if with_capacity:
            uniq, inverse = np.unique(start, return_inverse=True)
            inverse = inverse.ravel()
            for k, t in enumerate(uniq):
                free = (nodes.slot_free_at <= t).sum(axis=1)
                sub = np.flatnonzero(inverse == k)
                if len(sub) == len(rows):
                    acc &= free[None, :] >= g[:, None]
                else:
                    _and_rows(acc, sub, free[None, :] >= g[sub, None])
        out[lo:hi] = acc
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


def cumulative_masks(jobs: Jobs, nodes: Nodes, models: Models, row: int, *, now: float) -> list[tuple[str, BoolA]]:
    """For one job: (reason, candidate mask after applying that constraint) in REASONS order
    (constraints the job does not set are skipped). Used to explain what emptied the candidate set."""
    out: list[tuple[str, BoolA]] = []
    acc = np.ones(nodes.count, dtype=bool)
    for reason, maker in _steps(jobs, nodes, models, np.array([row]), now):
        if maker is None:
            continue
        acc = acc & maker()[0]
        out.append((reason, acc.copy()))
    return out
