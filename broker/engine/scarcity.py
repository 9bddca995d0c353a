"""Scarcity-aware placement: what taking a node's GPUs costs the demand that can only be served by few nodes.

In the spirit of FGD ("Beware of Fragmentation", USENIX ATC 2023), a placement is scored by how much it
blocks what other work will need. Here "other work" is

1. the pending queue: each requirement class whose feasible nodes hold less than `CONSTRAINED_SHARE` of
   the free GPUs is constrained; its GPUs are spread over its feasible nodes in proportion to their free
   GPUs (every node it can use is as likely to be needed);
2. a short forecast of constrained bookings: expected GPUs per (GPU model, region) over the next
   horizon (the caller measures it from recent bookings, see broker/services/matching.py), over the free
   GPUs of that (model, region) group.

A node's scarcity is the probability that this constrained demand exhausts its group: with D the pending
constrained GPUs attributed to the group, F its free GPUs and N ~ Poisson(forecast), P(N >= F - D) (1
when the pending demand alone covers F). Small groups (two A10 nodes) score high long before large ones.
The assigner subtracts `Weights.scarcity × scarcity` from every node's score, so work that could go
anywhere goes where it blocks least; constrained work, which can only go where it is feasible, is
unaffected among equally scarce nodes. Greedy and the max-flow step (which places within node classes
by score) both use it. Pure numpy, no Django.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import poisson

from broker.engine.types import BoolA, FloatA, IntA, Jobs, Nodes

CONSTRAINED_SHARE = 0.9  # a class that can use less than this share of the free GPUs is constrained
CHUNK = 256


def scarcity_cost(
    *,
    jobs: Jobs,
    nodes: Nodes,
    feas_reps: BoolA,
    req_class: IntA,
    now: float,
    forecast: FloatA | None = None,
) -> FloatA:
    """(N,) scarcity in [0, 1] per node: the probability that the constrained demand on the node's
    (GPU model, region) group exhausts the group's free GPUs.

    `feas_reps` (classes × N) is each requirement class's feasibility (with capacity); `req_class` the class
    of each job; `forecast` (models × regions) the expected constrained GPUs per group over the horizon."""
    n = nodes.count
    if n == 0:
        return np.zeros(0)
    free = (nodes.slot_free_at <= now).sum(axis=1).astype(float)
    n_regions = forecast.shape[1] if forecast is not None and forecast.size else int(nodes.region.max()) + 1
    group = nodes.model * n_regions + np.minimum(nodes.region, n_regions - 1)
    n_groups = int(group.max()) + 1
    group_free = np.bincount(group, weights=free, minlength=n_groups)
    pending = np.bincount(group, weights=_pending_demand(jobs, feas_reps, req_class, free), minlength=n_groups)
    expected = np.zeros(n_groups)
    if forecast is not None and forecast.size:
        flat = forecast.ravel()
        expected[: min(len(flat), n_groups)] = flat[:n_groups]
    # P(N >= k) for N ~ Poisson(expected), k = the free GPUs the pending constrained demand leaves.
    k = np.ceil(group_free - pending)
    tail = np.where(k <= 0, 1.0, poisson.sf(np.maximum(k, 1) - 1, np.maximum(expected, 1e-12)))
    cost: FloatA = np.clip(tail[group], 0.0, 1.0)
    return cost


def forecast_groups(recent: FloatA, group_gpus: FloatA, *, prior: float = 1.0) -> FloatA:
    """The forecast per (model, region) group from the constrained GPUs booked in a recent window: each
    group's own bookings, but never less than `prior` × its share of the listed GPUs × all the recent
    constrained bookings (so a rare model booked once in a while is not forecast at zero demand just
    because none was booked in the window)."""
    total = float(recent.sum())
    share = group_gpus / max(float(group_gpus.sum()), 1.0)
    smoothed: FloatA = np.maximum(recent, prior * share * total)
    return smoothed


def _pending_demand(jobs: Jobs, feas_reps: BoolA, req_class: IntA, free: FloatA) -> FloatA:
    """(N,) GPUs of pending constrained demand attributed to each node: a constrained class's GPUs spread
    over its feasible nodes in proportion to their free GPUs."""
    out = np.zeros(len(free))
    total = float(free.sum())
    if not jobs.count or not len(feas_reps) or total <= 0:
        return out
    demand = np.bincount(req_class, weights=jobs.gpu_count.astype(float), minlength=len(feas_reps))
    ratio = np.zeros(len(free))
    for c in np.flatnonzero(demand > 0).tolist():
        idx = np.flatnonzero(feas_reps[c])
        cap = float(free[idx].sum())
        if 0 < cap < CONSTRAINED_SHARE * total:
            ratio[idx] += demand[c] / cap
    out += ratio * free
    return out
