"""Array inputs and outputs of the matching engine (pure: numpy only, no Django)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatA = npt.NDArray[np.float64]
IntA = npt.NDArray[np.int64]
BoolA = npt.NDArray[np.bool_]

MODE_ON_DEMAND = 0
MODE_INTERRUPTIBLE = 1
MODE_RESERVED = 2

INF = float("inf")

# Placement preferences (a job's `placement`, the engine's `prefer`): among the feasible nodes with free
# GPUs, on-demand and reserved jobs take the cheapest ask (default), the most measured performance per
# dollar, or the most reliable node; ties go to the other scores (Weights). Interruptible jobs pay their
# bid and use the scores.
PLACE_CHEAPEST = 0
PLACE_PERF_PER_DOLLAR = 1
PLACE_RELIABLE = 2

# Reason codes, in the order the filter applies them: the first one that empties a job's candidate
# set is the job's reason. `capacity` = nodes fit but their GPUs are leased over the period;
# `contention` = GPUs were free at the snapshot but went to higher-priority jobs in this round.
REASONS = (
    "no_node_with_gpu_count",
    "gpu_model",
    "gpu_ram",
    "compute_capability",
    "tier",
    "region",
    "verified",
    "reliability",
    "inet",
    "cpu",
    "ram",
    "disk",
    "availability_window",
    "price",
    "pinned_node",
    "capacity",
    "contention",
)


@dataclass
class Models:
    """The GPU catalog as arrays, indexed by model index (0..M-1)."""

    vram: FloatA
    cc: FloatA
    tier: IntA
    fp16: FloatA

    @property
    def count(self) -> int:
        return len(self.vram)


@dataclass
class Nodes:
    """Free capacity: one row per listed node. `slot_free_at[n, s]` is the epoch second from which
    GPU slot s of node n is free (the end of its last holding; -inf if free; +inf if the slot does
    not exist). Times are epoch seconds (floats). `cpu_free`, `ram_free`, `disk_free` are the node's
    CPU cores, RAM (GB) and disk (GB) not consumed by leases that have not ended (consumable totals:
    a lease takes GPUs × the job's per-GPU minimum of each)."""

    ids: IntA
    model: IntA
    region: IntA
    reliability: FloatA
    verified: BoolA
    inet: FloatA
    cpu_free: FloatA
    ram_free: FloatA
    disk_free: FloatA
    ask: FloatA  # on-demand ask per GPU-hour, micro-USD
    min_bid: FloatA
    dlperf: FloatA  # measured TFLOPS per GPU (model fp16 when not measured)
    avail_from: FloatA
    avail_until: FloatA
    gpu_count: IntA
    slot_free_at: FloatA  # (N, S)
    # Backfill: (N, S) the time until which a slot that is free now stays free before a later holding
    # starts (-inf: no such gap; the slot is free from slot_free_at on). None: no gaps anywhere.
    gap_until: FloatA | None = None

    @property
    def count(self) -> int:
        return len(self.ids)

    def resources_free(self) -> FloatA:
        """(3, N): free CPU cores, RAM and disk per node."""
        return np.stack([self.cpu_free, self.ram_free, self.disk_free]).astype(float)


@dataclass
class Jobs:
    """Pending jobs: one row per job. `allowed_models` (J, M) and `allowed_regions` (J, R) are boolean
    masks (all True when unconstrained). `order`: lower goes first (fair share, then submission)."""

    ids: IntA
    gpu_count: IntA
    min_vram: FloatA
    allowed_models: BoolA
    min_cc: FloatA
    min_tier: IntA
    allowed_regions: BoolA
    pref_region: IntA  # -1 when none
    min_reliability: FloatA
    verified_only: BoolA
    min_inet: FloatA
    min_cpu_per_gpu: FloatA
    min_ram_per_gpu: FloatA
    min_disk_per_gpu: FloatA
    mode: IntA
    price_limit: FloatA  # max price (on-demand/reserved; inf = none) or bid (interruptible)
    start: FloatA
    end: FloatA
    order: IntA
    prefer: IntA  # PLACE_* placement preference
    pin: IntA  # node index the job was booked on (-1: none; -2: that node is not in the snapshot)

    @property
    def count(self) -> int:
        return len(self.ids)

    def resources_need(self) -> FloatA:
        """(3, J): CPU cores, RAM and disk each job consumes on its node (GPUs × per-GPU minimum)."""
        g = self.gpu_count.astype(float)
        return np.stack([g * self.min_cpu_per_gpu, g * self.min_ram_per_gpu, g * self.min_disk_per_gpu])


class ClassRows:
    """Feasibility rows per job without a jobs × nodes matrix: job j's row is its requirement class's row
    (`reps[cls[j]]`). Indexing with a job index or an index array gives what the full matrix would."""

    def __init__(self, reps: BoolA, cls: IntA) -> None:
        self.reps, self.cls = reps, cls

    def __getitem__(self, idx: int | IntA) -> BoolA:
        rows: BoolA = self.reps[self.cls[idx]]
        return rows

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.cls), self.reps.shape[1])


@dataclass
class Preemptible:
    """Interruptible leases that on-demand work may displace (their slots hold nothing after them)."""

    lease_ids: IntA
    node_idx: IntA
    bid: FloatA
    gpu_count: IntA
    slots: list[list[int]]
    resources: FloatA | None = None  # (3, L) CPU cores, RAM, disk each lease frees; None = nothing


@dataclass
class Placement:
    job_idx: int
    node_idx: int
    slots: list[int]
    price: int  # micro-USD per GPU-hour
    preempts: list[int] = field(default_factory=list)  # lease ids to preempt first
    why: str = ""  # how the node was chosen: pinned, cheapest, perf_per_dollar, reliable, bid, rerouted, preempt


@dataclass
class Result:
    placements: list[Placement]
    reasons: dict[int, str]  # job index -> reason code, for every unplaced job
    timings_ms: dict[str, float]
    stats: dict[str, float | int | str] = field(default_factory=dict)


@dataclass
class Weights:
    price: float = 1.0
    perf_per_dollar: float = 1.0
    reliability: float = 0.5
    locality: float = 0.3
    packing: float = 0.8
    scarcity: float = 2.0  # broker/engine/scarcity.py: taking GPUs that constrained demand needs
