"""Fair share in the spirit of HTCondor user priorities: recent usage decays with a half-life;
less recent usage goes first. Interruptible jobs come after on-demand/reserved work and compete by
bid (highest first)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from broker.engine.types import MODE_INTERRUPTIBLE, FloatA, IntA


def decayed_usage(
    *, spans: Iterable[tuple[int, float, float, int]], now: float, half_life_s: float
) -> dict[int, float]:
    """GPU-hours per customer from (customer, start, end, gpus) spans; each second of use at time t
    counts 2^-((now - t)/half_life). Integrated exactly over the span."""
    lam = math.log(2) / half_life_s
    usage: dict[int, float] = {}
    for customer, start, end, gpus in spans:
        end = min(end, now)
        if end <= start:
            continue
        # ∫_start^end e^{-lam (now - t)} dt = (e^{-lam(now-end)} - e^{-lam(now-start)}) / lam
        gpu_seconds = gpus * (math.exp(-lam * (now - end)) - math.exp(-lam * (now - start))) / lam
        usage[customer] = usage.get(customer, 0.0) + gpu_seconds / 3600.0
    return usage


def priority_order(
    *,
    usage: FloatA,
    submitted: FloatA,
    mode: IntA,
    bid: FloatA,
    customer: IntA | None = None,
    demand_gpu_hours: FloatA | None = None,
) -> IntA:
    """Rank (0 = first) for each job: on-demand/reserved before interruptible; interruptible by bid
    (highest first); then effective usage (lowest first); then submission time.

    Effective usage = the customer's decayed usage + the GPU-hours of that customer's earlier pending
    jobs (submission order), so within one round a customer with a long queue is interleaved with
    others instead of going first with all of it. Within a customer, submission order always holds.
    """
    effective = usage.astype(float).copy()
    if customer is not None and demand_gpu_hours is not None and len(customer):
        by_time = np.lexsort((submitted, customer))
        cust_sorted = customer[by_time]
        dem = demand_gpu_hours[by_time]
        cum = np.cumsum(dem) - dem
        first = np.r_[True, cust_sorted[1:] != cust_sorted[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(cum)), 0))
        before = cum - cum[group_start]
        effective[by_time] += before
    interruptible = (mode == MODE_INTERRUPTIBLE).astype(np.int64)
    bid_key = np.where(interruptible == 1, -bid, 0.0)
    idx = np.lexsort((submitted, effective, bid_key, interruptible))
    rank = np.empty(len(idx), dtype=np.int64)
    rank[idx] = np.arange(len(idx))
    return rank
