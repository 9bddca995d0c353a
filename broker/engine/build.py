"""Build engine inputs from plain dicts (tests, property tests, small tools). Pure: no Django."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from broker.engine.types import Jobs, Models, Nodes

MAX_SLOTS = 8

NODE_DEFAULTS: dict[str, Any] = {
    "model": 0,
    "region": 0,
    "reliability": 0.99,
    "verified": True,
    "inet": 1000.0,
    "cpu_per_gpu": 8.0,  # totals default to per-GPU × GPUs; give "cpu"/"ram"/"disk" to set free totals
    "ram_per_gpu": 32.0,
    "disk_per_gpu": 500.0,
    "cpu": None,
    "ram": None,
    "disk": None,
    "ask": 1_000_000.0,
    "min_bid": 500_000.0,
    "dlperf": 100.0,
    "avail_from": -np.inf,
    "avail_until": np.inf,
    "gpu_count": 4,
}

JOB_DEFAULTS: dict[str, Any] = {
    "gpu_count": 1,
    "min_vram": 0.0,
    "models": None,  # list of model indices, None = any
    "min_cc": 0.0,
    "min_tier": 0,
    "regions": None,  # list of region indices, None = any
    "min_reliability": 0.0,
    "verified_only": True,
    "min_inet": 0.0,
    "min_cpu_per_gpu": 0.0,
    "min_ram_per_gpu": 0.0,
    "min_disk_per_gpu": 0.0,
    "mode": 0,
    "price_limit": np.inf,
    "start": 0.0,
    "duration": 3600.0,
    "placement": 0,  # PLACE_CHEAPEST
    "pin": -1,  # node index, -1 = none
}


def make_models(specs: Sequence[dict[str, Any]]) -> Models:
    return Models(
        vram=np.array([float(s.get("vram", 24)) for s in specs]),
        cc=np.array([float(s.get("cc", 8.9)) for s in specs]),
        tier=np.array([int(s.get("tier", 2)) for s in specs], dtype=np.int64),
        fp16=np.array([float(s.get("fp16", 100)) for s in specs]),
    )


def make_nodes(specs: Sequence[dict[str, Any]], *, busy: dict[int, list[float]] | None = None) -> Nodes:
    """`busy` maps node index → per-slot free-from times (missing slots are free)."""
    rows = [{**NODE_DEFAULTS, **s} for s in specs]
    n = len(rows)
    for r in rows:
        for total, per in (("cpu", "cpu_per_gpu"), ("ram", "ram_per_gpu"), ("disk", "disk_per_gpu")):
            if r[total] is None:
                r[total] = float(r[per]) * int(r["gpu_count"])
    col = {k: np.array([r[k] for r in rows]) for k in NODE_DEFAULTS} if n else {k: np.array([]) for k in NODE_DEFAULTS}
    slot_free_at = np.full((n, MAX_SLOTS), np.inf)
    for i, r in enumerate(rows):
        slot_free_at[i, : int(r["gpu_count"])] = -np.inf
        for s, t in enumerate((busy or {}).get(i, [])[: int(r["gpu_count"])]):
            slot_free_at[i, s] = t
    return Nodes(
        ids=np.arange(1, n + 1, dtype=np.int64),
        model=col["model"].astype(np.int64),
        region=col["region"].astype(np.int64),
        reliability=col["reliability"].astype(float),
        verified=col["verified"].astype(bool),
        inet=col["inet"].astype(float),
        cpu_free=col["cpu"].astype(float),
        ram_free=col["ram"].astype(float),
        disk_free=col["disk"].astype(float),
        ask=col["ask"].astype(float),
        min_bid=col["min_bid"].astype(float),
        dlperf=col["dlperf"].astype(float),
        avail_from=col["avail_from"].astype(float),
        avail_until=col["avail_until"].astype(float),
        gpu_count=col["gpu_count"].astype(np.int64),
        slot_free_at=slot_free_at,
    )


def make_jobs(specs: Sequence[dict[str, Any]], *, n_models: int, n_regions: int, order: Sequence[int] = ()) -> Jobs:
    rows = [{**JOB_DEFAULTS, **s} for s in specs]
    n = len(rows)
    am = np.ones((n, n_models), dtype=bool)
    ar = np.ones((n, n_regions), dtype=bool)
    pref = np.full(n, -1, dtype=np.int64)
    for i, r in enumerate(rows):
        if r["models"] is not None:
            am[i] = False
            am[i, list(r["models"])] = True
        if r["regions"] is not None:
            ar[i] = False
            ar[i, list(r["regions"])] = True
            pref[i] = r["regions"][0] if r["regions"] else -1

    def col(k: str, dtype: Any = float) -> np.ndarray:
        return np.array([r[k] for r in rows], dtype=dtype)

    start = col("start")
    return Jobs(
        ids=np.arange(1, n + 1, dtype=np.int64),
        gpu_count=col("gpu_count", np.int64),
        min_vram=col("min_vram"),
        allowed_models=am,
        min_cc=col("min_cc"),
        min_tier=col("min_tier", np.int64),
        allowed_regions=ar,
        pref_region=pref,
        min_reliability=col("min_reliability"),
        verified_only=col("verified_only", bool),
        min_inet=col("min_inet"),
        min_cpu_per_gpu=col("min_cpu_per_gpu"),
        min_ram_per_gpu=col("min_ram_per_gpu"),
        min_disk_per_gpu=col("min_disk_per_gpu"),
        mode=col("mode", np.int64),
        price_limit=col("price_limit"),
        start=start,
        end=start + col("duration"),
        order=np.array(list(order) if order else range(n), dtype=np.int64),
        prefer=col("placement", np.int64),
        pin=col("pin", np.int64),
    )
