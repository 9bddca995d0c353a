"""Loader of the Alibaba GPU cluster trace (2023) shipped in data/alibaba-gpu-2023/ (see data/README.md)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def trace_dir() -> Path:
    """The trace's folder inside the repository (project root / data / alibaba-gpu-2023)."""
    return ROOT / "data" / "alibaba-gpu-2023"


@dataclass(frozen=True)
class TraceNode:
    gpu_count: int
    model_code: str


@dataclass(frozen=True)
class TraceTask:
    gpu_count: int  # fractional GPU → 1 (RigShift rents whole GPUs)
    duration_s: int
    wait_s: int
    created_s: int = 0  # arrival: seconds from the trace's start


def trace_nodes() -> list[TraceNode]:
    with (trace_dir() / "openb_node_list_gpu_node.csv").open(newline="") as fh:
        return [TraceNode(int(r["gpu"]), r["model"]) for r in csv.DictReader(fh) if int(r["gpu"]) > 0]


def trace_gpu_tasks(*, min_duration_s: int = 60, max_duration_s: int = 7 * 86400) -> list[TraceTask]:
    """GPU tasks only (num_gpu ≥ 1); durations = deletion − creation, clipped."""
    out = []
    with (trace_dir() / "openb_pod_list_default.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            gpus = int(r["num_gpu"])
            if gpus < 1:
                continue
            created = int(r["creation_time"] or 0)
            deleted = int(r["deletion_time"] or created)
            scheduled = int(r["scheduled_time"] or created)
            duration = min(max(deleted - created, min_duration_s), max_duration_s)
            out.append(TraceTask(gpus, duration, max(0, scheduled - created), created))
    return out
