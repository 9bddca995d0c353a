"""Replay of the Alibaba GPU trace through the real engine: `python -m bench.replay --seed 1 [--compress K]`.

The trace in the repository (data/alibaba-gpu-2023: the default pod list with its node list, read through
simulator/trace.py) is replayed in simulated time: GPU tasks arrive at the trace's own creation times divided
by K (`--compress`, 1 = the trace's own pace; durations are kept, so demand grows K-fold), match rounds run
every 5 s (a round in which nothing arrived, ended or gave up is skipped: it would place nothing), and a task
that is still unplaced `--patience` seconds after it arrived gives up (never placed). About a third of the
GPU tasks (`--constrained`, as in Alibaba's production, where about 33% carry one) require one GPU model,
drawn in proportion to each model's GPUs in the cluster.

Three policies run on the same input in the same run:

- `engine`: broker.engine.match (the matcher the match rounds run: filter, greedy with the scores and the
  scarcity cost, max-flow augmentation, backfill), with the scarcity forecast from the constrained
  arrivals of the last 10 minutes. The trace has no prices, so every node asks the same and has the
  same measured performance and reliability: price ties everywhere and placement is decided by packing
  and scarcity (docs/architecture.md, "Scores and weights").
- `firstfit`: FIFO, each task on the first node in the node list with enough free GPUs of its model.
- `bestfit`: FIFO, each task on the node with the fewest free GPUs that fits (ties: node list order).

For each policy it prints tasks placed, never placed (% of tasks), wait p50/p99 (placed tasks) overall,
for model-constrained and for unconstrained tasks, and the GPU allocation rate at the busiest moment (the
round with the most GPUs held or waited for); the last line is
`never_placed_pct=… firstfit_never_placed_pct=… bestfit_never_placed_pct=… constrained_wait_p99_s=…`.
Pure (numpy, the engine, the trace loader): no database.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from broker.engine import Jobs, Models, Nodes, Weights, match
from broker.engine.scarcity import forecast_groups
from simulator.trace import trace_gpu_tasks, trace_nodes

ROUND_S = 5.0
SLOTS = 8
FORECAST_WINDOW_S = 7200.0
FORECAST_HORIZON_S = 3600.0


@dataclass
class Task:
    arrival: float
    gpus: int
    duration: float
    model: int  # required model index, -1 = any


@dataclass
class Outcome:
    name: str
    waits: dict[int, float] = field(default_factory=dict)  # task index -> wait (s)
    busiest_waiting: int = 0
    busiest_demand: int = -1
    busiest_alloc: float = 0.0
    peak_alloc: float = 0.0
    rounds: int = 0
    seconds: float = 0.0


def load(*, seed: int, compress: float, constrained: float) -> tuple[list[Task], np.ndarray, np.ndarray, list[str]]:
    """Tasks (arrival order), node GPU counts, node model indices, model codes."""
    nodes = trace_nodes()
    codes = sorted({n.model_code for n in nodes})
    node_model = np.array([codes.index(n.model_code) for n in nodes], dtype=np.int64)
    node_gpus = np.array([n.gpu_count for n in nodes], dtype=np.int64)
    rng = np.random.default_rng(seed)
    tasks = []
    for t in sorted(trace_gpu_tasks(), key=lambda t: t.created_s):
        gpus = min(t.gpu_count, SLOTS)
        # A model with a node big enough (a booking no node could ever meet is refused, not queued).
        fits = node_gpus >= gpus
        weights = np.bincount(node_model[fits], weights=node_gpus[fits], minlength=len(codes))
        model = int(rng.choice(len(codes), p=weights / weights.sum())) if rng.random() < constrained else -1
        tasks.append(Task(t.created_s / compress, gpus, float(t.duration_s), model))
    return tasks, node_gpus, node_model, codes


class Policy:
    """One scheduler over the replay's cluster state (slot_free_at: when each GPU slot is free)."""

    def __init__(self, name: str, node_gpus: np.ndarray, node_model: np.ndarray) -> None:
        self.name = name
        self.node_gpus, self.node_model = node_gpus, node_model
        self.free_at = np.full((len(node_gpus), SLOTS), np.inf)
        self.free_at[np.arange(SLOTS)[None, :] < node_gpus[:, None]] = -np.inf

    def round(self, *, now: float, pending: list[int], tasks: list[Task]) -> list[int]:
        """Place what it can of `pending` (arrival order); returns the placed task indices."""
        raise NotImplementedError

    def take(self, n: int, gpus: int, now: float, end: float) -> None:
        free = np.flatnonzero(self.free_at[n] <= now)[:gpus]
        self.free_at[n, free] = end


class Fit(Policy):
    def __init__(self, name: str, node_gpus: np.ndarray, node_model: np.ndarray, *, best: bool) -> None:
        super().__init__(name, node_gpus, node_model)
        self.best = best

    def round(self, *, now: float, pending: list[int], tasks: list[Task]) -> list[int]:
        free = (self.free_at <= now).sum(axis=1)
        placed = []
        for i in pending:
            task = tasks[i]
            ok = free >= task.gpus
            if task.model >= 0:
                ok &= self.node_model == task.model
            cand = np.flatnonzero(ok)
            if len(cand) == 0:
                continue
            n = int(cand[np.argmin(free[cand])]) if self.best else int(cand[0])
            self.take(n, task.gpus, now, now + task.duration)
            free[n] -= task.gpus
            placed.append(i)
        return placed


class Engine(Policy):
    def __init__(self, name: str, node_gpus: np.ndarray, node_model: np.ndarray, *, weights: Weights) -> None:
        super().__init__(name, node_gpus, node_model)
        self.weights = weights
        m = int(node_model.max()) + 1
        self.models = Models(
            vram=np.full(m, 32.0), cc=np.full(m, 8.0), tier=np.full(m, 3, dtype=np.int64), fp16=np.full(m, 100.0)
        )
        n = len(node_gpus)
        self.group_gpus: np.ndarray = (
            np.bincount(node_model, weights=node_gpus.astype(float), minlength=m).reshape(m, 1).astype(float)
        )
        self.recent: list[tuple[float, int, int]] = []  # (arrival, model, gpus) of constrained tasks

        def const(v: float) -> np.ndarray:
            return np.full(n, v)

        self.nodes = Nodes(  # slot_free_at is the policy's own array: the engine reads the live state
            ids=np.arange(1, n + 1, dtype=np.int64),
            model=node_model,
            region=np.zeros(n, dtype=np.int64),
            reliability=const(0.99),
            verified=np.ones(n, dtype=bool),
            inet=const(1000.0),
            cpu_free=const(1e9),
            ram_free=const(1e9),
            disk_free=const(1e9),
            ask=const(1_000_000.0),
            min_bid=const(0.0),
            dlperf=const(100.0),
            avail_from=const(-np.inf),
            avail_until=const(np.inf),
            gpu_count=node_gpus,
            slot_free_at=self.free_at,
        )

    def forecast(self, now: float, tasks: list[Task], arrived: list[int]) -> np.ndarray:
        """Constrained GPUs expected per (model, region) over the horizon, from the last window's arrivals."""
        m = self.models.count
        out = np.zeros((m, 1))
        for i in reversed(arrived):
            task = tasks[i]
            if task.arrival < now - FORECAST_WINDOW_S:
                break
            if task.model >= 0:
                out[task.model, 0] += task.gpus
        return forecast_groups(out, self.group_gpus) * (FORECAST_HORIZON_S / FORECAST_WINDOW_S)

    def round(
        self, *, now: float, pending: list[int], tasks: list[Task], arrived: list[int] | None = None
    ) -> list[int]:
        k = len(pending)
        m = self.models.count
        allowed = np.ones((k, m), dtype=bool)
        for row, i in enumerate(pending):
            if tasks[i].model >= 0:
                allowed[row] = False
                allowed[row, tasks[i].model] = True
        start = np.array([tasks[i].arrival for i in pending])
        duration = np.array([tasks[i].duration for i in pending])

        def z(v: float = 0.0) -> np.ndarray:
            return np.full(k, v)

        jobs = Jobs(
            ids=np.array(pending, dtype=np.int64) + 1,
            gpu_count=np.array([tasks[i].gpus for i in pending], dtype=np.int64),
            min_vram=z(),
            allowed_models=allowed,
            min_cc=z(),
            min_tier=np.zeros(k, dtype=np.int64),
            allowed_regions=np.ones((k, 1), dtype=bool),
            pref_region=np.full(k, -1, dtype=np.int64),
            min_reliability=z(),
            verified_only=np.zeros(k, dtype=bool),
            min_inet=z(),
            min_cpu_per_gpu=z(),
            min_ram_per_gpu=z(),
            min_disk_per_gpu=z(),
            mode=np.zeros(k, dtype=np.int64),
            price_limit=z(np.inf),
            start=start,
            end=start + duration,
            order=np.arange(k, dtype=np.int64),
            prefer=np.zeros(k, dtype=np.int64),
            pin=np.full(k, -1, dtype=np.int64),
        )
        nodes = self.nodes
        forecast = self.forecast(now, tasks, arrived or []) if self.weights.scarcity else None
        result = match(jobs=jobs, nodes=nodes, models=self.models, now=now, weights=self.weights, forecast=forecast)
        placed = []
        for p in result.placements:
            i = pending[p.job_idx]
            end = max(tasks[i].arrival, now) + tasks[i].duration
            self.free_at[p.node_idx, p.slots] = end
            placed.append(i)
        return placed


def replay(policy: Policy, tasks: list[Task], *, patience: float) -> Outcome:
    out = Outcome(policy.name)
    t0 = time.perf_counter()
    total_gpus = float(policy.node_gpus.sum())
    nxt = 0  # next task to arrive
    pending: list[int] = []
    arrived: list[int] = []
    now = _tick(tasks[0].arrival) if tasks else 0.0
    while nxt < len(tasks) or pending:
        while nxt < len(tasks) and tasks[nxt].arrival <= now:
            pending.append(nxt)
            arrived.append(nxt)
            nxt += 1
        pending = [i for i in pending if now - tasks[i].arrival <= patience]  # the rest gave up
        if pending:
            kwargs = {"arrived": arrived} if isinstance(policy, Engine) else {}
            placed = set(policy.round(now=now, pending=pending, tasks=tasks, **kwargs))
            out.rounds += 1
            for i in placed:
                out.waits[i] = max(0.0, now - tasks[i].arrival)
            waiting = sum(tasks[i].gpus for i in pending if i not in placed)
            busy = int(((policy.free_at > now) & np.isfinite(policy.free_at)).sum())
            alloc = busy / total_gpus
            out.peak_alloc = max(out.peak_alloc, alloc)
            if busy + waiting > out.busiest_demand:  # the busiest moment: most GPUs held or waited for
                out.busiest_demand, out.busiest_waiting, out.busiest_alloc = busy + waiting, waiting, alloc
            pending = [i for i in pending if i not in placed]
        now = _next_round(now, tasks, nxt, pending, policy, patience)
    out.seconds = time.perf_counter() - t0
    return out


def _tick(t: float) -> float:
    return math.ceil(t / ROUND_S) * ROUND_S


def _next_round(now: float, tasks: list[Task], nxt: int, pending: list[int], policy: Policy, patience: float) -> float:
    """The next 5-s round at which something changes: an arrival, or (with work waiting) a GPU freed or a
    waiting task giving up."""
    events = [tasks[nxt].arrival] if nxt < len(tasks) else []
    if pending:
        busy = policy.free_at[np.isfinite(policy.free_at) & (policy.free_at > now)]
        if len(busy):
            events.append(float(busy.min()))
        events.append(min(tasks[i].arrival for i in pending) + patience + 1e-6)
    if not events:
        return now + ROUND_S
    return max(now + ROUND_S, _tick(min(events)))


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(out: Outcome, tasks: list[Task], gpus_total: int) -> dict[str, float]:
    n = len(tasks)
    placed = len(out.waits)
    cons = [w for i, w in out.waits.items() if tasks[i].model >= 0]
    free = [w for i, w in out.waits.items() if tasks[i].model < 0]
    n_cons = sum(1 for t in tasks if t.model >= 0)
    figures = {
        "placed": placed,
        "never_placed_pct": 100.0 * (n - placed) / n if n else 0.0,
        "constrained_never_placed_pct": 100.0 * (n_cons - len(cons)) / n_cons if n_cons else 0.0,
        "wait_p50_s": _pct(list(out.waits.values()), 50),
        "wait_p99_s": _pct(list(out.waits.values()), 99),
        "constrained_wait_p50_s": _pct(cons, 50),
        "constrained_wait_p99_s": _pct(cons, 99),
        "unconstrained_wait_p99_s": _pct(free, 99),
        "alloc_at_busiest_pct": 100.0 * out.busiest_alloc,
    }
    print(
        f"{out.name:9s} placed {placed}/{n} · never placed {figures['never_placed_pct']:.2f}% "
        f"(constrained {figures['constrained_never_placed_pct']:.2f}%) · wait p50/p99 "
        f"{figures['wait_p50_s']:.0f}/{figures['wait_p99_s']:.0f} s · constrained "
        f"{figures['constrained_wait_p50_s']:.0f}/{figures['constrained_wait_p99_s']:.0f} s · unconstrained p99 "
        f"{figures['unconstrained_wait_p99_s']:.0f} s · GPU allocation at the busiest moment "
        f"{figures['alloc_at_busiest_pct']:.1f}% ({out.busiest_waiting} GPUs waiting; peak "
        f"{100 * out.peak_alloc:.1f}%) · {out.rounds} rounds in {out.seconds:.1f} s",
        flush=True,
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compress", type=float, default=1.0, help="divide arrival times by K (1 = own pace)")
    parser.add_argument("--patience", type=float, default=3600.0, help="seconds a task waits before giving up")
    parser.add_argument("--constrained", type=float, default=1 / 3, help="share of GPU tasks requiring a model")
    parser.add_argument("--scarcity", type=float, default=Weights().scarcity, help="the engine's scarcity weight")
    args = parser.parse_args(argv)
    tasks, node_gpus, node_model, codes = load(seed=args.seed, compress=args.compress, constrained=args.constrained)
    gpus = int(node_gpus.sum())
    print(
        f"trace: {len(tasks)} GPU tasks ({sum(t.model >= 0 for t in tasks)} model-constrained), "
        f"{len(node_gpus)} nodes / {gpus} GPUs ({', '.join(codes)}); compress {args.compress:g}, "
        f"patience {args.patience:g} s, rounds every {ROUND_S:g} s",
        flush=True,
    )
    policies: list[Callable[[], Policy]] = [
        lambda: Engine("engine", node_gpus, node_model, weights=Weights(scarcity=args.scarcity)),
        lambda: Fit("firstfit", node_gpus, node_model, best=False),
        lambda: Fit("bestfit", node_gpus, node_model, best=True),
    ]
    results = {}
    for make in policies:
        policy = make()
        results[policy.name] = report(replay(policy, tasks, patience=args.patience), tasks, gpus)
    e, f, b = results["engine"], results["firstfit"], results["bestfit"]
    print(
        f"never_placed_pct={e['never_placed_pct']:.3f} firstfit_never_placed_pct={f['never_placed_pct']:.3f} "
        f"bestfit_never_placed_pct={b['never_placed_pct']:.3f} "
        f"constrained_wait_p99_s={e['constrained_wait_p99_s']:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
