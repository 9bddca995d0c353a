"""Assignment: greedy in priority order, then exact max-flow augmentation for single-GPU jobs.

1. Greedy: jobs in priority order (multi-GPU and single-GPU alike) each take the best-scoring
   feasible node with enough free GPUs. Where the market is loose this places everything.
2. Contended sub-market: if single-GPU jobs with feasible nodes were left unplaced, the
   single-GPU part is a bipartite b-matching. Nodes with identical feasibility columns are
   merged into classes, jobs with identical rows into classes, and the greedy placement is
   augmented to a maximum flow on the class graph (scipy max-flow on the residual network).
   Augmenting paths never start or end at an already placed job, so every job greedy placed stays
   placed (priority holds); jobs may move to other nodes. Jobs that consume CPU/RAM/disk stay where greedy
   put them (moving them could overcommit a node). The result places the maximum number of
   single-GPU jobs possible given the multi-GPU placements.
3. Leftover multi-GPU jobs get one more greedy pass; then on-demand jobs still blocked by capacity
   may preempt the lowest-bid interruptible leases on a node.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import maximum_flow

from broker.engine.types import (
    MODE_INTERRUPTIBLE,
    PLACE_CHEAPEST,
    PLACE_PERF_PER_DOLLAR,
    PLACE_RELIABLE,
    BoolA,
    ClassRows,
    FloatA,
    IntA,
    Jobs,
    Nodes,
    Preemptible,
    Weights,
)

BID = -1  # the preference group of interruptible jobs: scores only (they pay their bid anywhere)
WHY = {BID: "bid", PLACE_CHEAPEST: "cheapest", PLACE_PERF_PER_DOLLAR: "perf_per_dollar", PLACE_RELIABLE: "reliable"}

MAX_FLOW_EDGES = 4_000_000


def node_base_score(nodes: Nodes, weights: Weights) -> FloatA:
    """Job-independent score: cheaper, more performance per dollar, more reliable is better."""
    if nodes.count == 0:
        return np.zeros(0)
    ask = np.maximum(nodes.ask, 1.0)
    price = 1.0 - ask / ask.max()
    ppd = nodes.dlperf / ask
    ppd = ppd / ppd.max() if ppd.max() > 0 else ppd
    return weights.price * price + weights.perf_per_dollar * ppd + weights.reliability * nodes.reliability


def preference_keys(nodes: Nodes) -> dict[int, tuple[FloatA, ...]]:
    """Per placement preference, the node keys that decide first (most significant first; higher is better),
    before the scores break ties: cheapest = lowest ask; best performance per dollar = measured TFLOPS per
    dollar, then lowest ask; most reliable = reliability, then lowest ask."""
    ask = np.maximum(nodes.ask, 1.0)
    return {
        BID: (),
        PLACE_CHEAPEST: (-nodes.ask,),
        PLACE_PERF_PER_DOLLAR: (nodes.dlperf / ask, -nodes.ask),
        PLACE_RELIABLE: (nodes.reliability, -nodes.ask),
    }


def _best_order(keys: tuple[FloatA, ...], score: FloatA) -> IntA:
    """Indices ordered best first: by `keys` lexicographically, then `score` (all higher = better)."""
    order: IntA = np.lexsort((score, *reversed(keys)))[::-1]
    return order


def _take_slots(free_at_row: FloatA, start: float, end: float, g: int) -> list[int]:
    """The g slots free at `start` that became free last (tightest fit in time); marks them busy to `end`."""
    cand = np.flatnonzero(free_at_row <= start)
    chosen = cand[np.argsort(-free_at_row[cand], kind="stable")[:g]]
    free_at_row[chosen] = end
    return sorted(int(s) for s in chosen)


class Assigner:
    def __init__(
        self,
        jobs: Jobs,
        nodes: Nodes,
        feas: BoolA | ClassRows,
        *,
        now: float,
        weights: Weights,
        slot_free_at: FloatA,
        req_class: IntA | None = None,
        scarcity: FloatA | None = None,
    ) -> None:
        """`req_class` (optional): jobs with the same value have identical feasibility rows and preferred
        region (broker.engine.requirement_classes); without it classes are found by hashing rows."""
        self.req_class = req_class
        self.jobs, self.nodes, self.feas, self.now, self.w = jobs, nodes, feas, now, weights
        self.slot_free_at = slot_free_at  # mutated as slots are taken
        self.free_now: IntA = (slot_free_at <= now).sum(axis=1)
        self.base = node_base_score(nodes, weights)
        if scarcity is not None:
            self.base = self.base - weights.scarcity * scarcity
        self.keys = preference_keys(nodes)
        self.group = np.where(jobs.mode == MODE_INTERRUPTIBLE, BID, jobs.prefer).astype(np.int64)
        self.rerouted: set[int] = set()
        self.backfilled: set[int] = set()
        self.max_slots = max(int(nodes.gpu_count.max()) if nodes.count else 1, 1)
        self.node_of = np.full(jobs.count, -1, dtype=np.int64)
        self.slots_of: dict[int, list[int]] = {}
        self.start = np.maximum(jobs.start, now)
        self.end = jobs.end + (self.start - jobs.start)
        self.stats: dict[str, float | int | str] = {}
        self._packed: np.ndarray | None = None
        # Consumable CPU cores, RAM and disk: (3, N) free per node, (3, J) each job's need.
        self.res = nodes.resources_free()
        self.need = jobs.resources_need()
        self.needs_res: BoolA = np.asarray((self.need > 0).any(axis=0), dtype=bool)

    def why_of(self, j: int) -> str:
        """How job j's node was chosen (for the job page)."""
        if self.jobs.pin[j] >= 0:
            return "pinned"
        if j in self.rerouted:
            return "rerouted"
        if j in self.backfilled:
            return "backfill"
        return WHY.get(int(self.group[j]), "cheapest")

    def _res_ok(self, j: int, cand: IntA) -> BoolA:
        """Which candidate nodes have the job's CPU, RAM and disk free."""
        if not self.needs_res[j]:
            return np.ones(len(cand), dtype=bool)
        ok: BoolA = np.asarray((self.res[:, cand] >= self.need[:, j : j + 1]).all(axis=0), dtype=bool)
        return ok

    # -- greedy --------------------------------------------------------------------------------
    def _score(self, j: int, cand: IntA, free: IntA) -> FloatA:
        g = self.jobs.gpu_count[j]
        pack = -(free - g) / self.max_slots + 0.5 * (free == g)
        s = self.base[cand] + self.w.packing * pack
        pref = self.jobs.pref_region[j]
        if pref >= 0:
            s = s + self.w.locality * (self.nodes.region[cand] == pref)
        return s

    def _place(self, j: int, n: int) -> None:
        g = int(self.jobs.gpu_count[j])
        row = self.slot_free_at[n]
        start = float(self.start[j])
        if g == 1 and start <= self.now:
            s, best = -1, -np.inf
            for k, v in enumerate(row.tolist()):
                if v <= start and (s < 0 or v > best):
                    s, best = k, v
            if s < 0:
                raise AssertionError("no free slot on a node chosen for capacity")
            row[s] = float(self.end[j])
            self.slots_of[j] = [s]
            self.free_now[n] -= 1
        else:
            self.slots_of[j] = _take_slots(row, start, float(self.end[j]), g)
            self.free_now[n] = int((row <= self.now).sum())
        self.node_of[j] = n
        if self.needs_res[j]:
            self.res[:, n] -= self.need[:, j]

    def _try_greedy(self, j: int) -> bool:
        cand = np.flatnonzero(self.feas[j])
        if len(cand) == 0:
            return False
        g = self.jobs.gpu_count[j]
        if self.start[j] <= self.now:
            free = self.free_now[cand]
        else:
            free = (self.slot_free_at[cand] <= self.start[j]).sum(axis=1)
        ok = (free >= g) & self._res_ok(j, cand)
        if not ok.any():
            return False
        cand, free = cand[ok], free[ok]
        keys = tuple(k[cand] for k in self.keys[int(self.group[j])])
        self._place(j, int(cand[_best_order(keys, self._score(j, cand, free))[0]]))
        return True

    def greedy(self, order: IntA) -> None:
        """Jobs in priority order take the best node that fits. Single-GPU jobs starting now go through
        per-class candidate lists (jobs with identical feasibility rows and preferred region share one
        list, ordered once by score with a packing preference for nodes with few free GPUs, and walked
        with a pointer: a full node stays full within the greedy pass)."""
        jobs = self.jobs
        single = (jobs.gpu_count == 1) & (self.start <= self.now)
        cls = self._single_classes(np.flatnonzero(single & (self.node_of < 0)))
        free = self.free_now
        key = self.base + self.w.packing * (-(free - 1) / self.max_slots + 0.5 * (free == 1))
        regions = np.unique(self.nodes.region).tolist()
        orders: dict[int, tuple[IntA, dict[int, IntA]]] = {}
        for grp in np.unique(self.group[order]).tolist() if len(order) else []:
            go = _best_order(self.keys[grp], key)
            orders[grp] = (go, {int(r): go[self.nodes.region[go] == r] for r in regions})
        empty = np.zeros(0, dtype=np.int64)
        pointers: dict[int, list[int]] = {}  # class -> [pointer into its region list, pointer into global]
        for j in order.tolist():
            if self.node_of[j] >= 0:
                continue
            c = cls.get(j)
            if c is None:
                self._try_greedy(j)
                continue
            ptr = pointers.setdefault(c, [0, 0])
            global_order, by_region = orders[int(self.group[j])]
            row = self.feas[j]
            pref = int(jobs.pref_region[j])
            n = -1
            need = self.need[:, j] if self.needs_res[j] else None
            if pref >= 0:
                ptr[0], n = _scan(by_region.get(pref, empty), ptr[0], row, free, self.res, need)
            if n < 0:
                ptr[1], n = _scan(global_order, ptr[1], row, free, self.res, need)
            if n >= 0:
                self._place(j, n)

    def _packed_rows(self) -> np.ndarray:
        if self._packed is None:
            self._packed = np.packbits(self.feas[np.arange(self.jobs.count)], axis=1)
        return self._packed

    def _single_classes(self, rows: IntA) -> dict[int, int]:
        if self.req_class is not None:
            return dict(zip(rows.tolist(), self.req_class[rows].tolist(), strict=True))
        return self._hashed_classes(rows)

    def _hashed_classes(self, rows: IntA) -> dict[int, int]:
        """Class id per job: a 64-bit hash of (feasibility row, preferred region). A hash collision can
        only merge candidate lists; `greedy` re-checks feasibility of every pick, so it costs a
        fallback, never a constraint."""
        if len(rows) == 0:
            return {}
        packed = self._packed_rows()[rows]
        pad = (-packed.shape[1]) % 8
        if pad:
            packed = np.concatenate([packed, np.zeros((len(rows), pad), dtype=np.uint8)], axis=1)
        words = np.ascontiguousarray(packed).view(np.uint64)
        mult = np.asarray(np.random.default_rng(12345).integers(1, 2**63, size=words.shape[1], dtype=np.uint64))
        mult = mult | np.uint64(1)
        with np.errstate(over="ignore"):
            h = (words * mult[None, :]).sum(axis=1, dtype=np.uint64)
            h = h * np.uint64(1_000_003) + (self.jobs.pref_region[rows] + 1).astype(np.uint64)
            h = h * np.uint64(1_000_033) + (self.group[rows] + 2).astype(np.uint64)
        _, inverse = np.unique(h, return_inverse=True)
        return dict(zip(rows.tolist(), inverse.ravel().tolist(), strict=True))

    # -- max-flow augmentation for single-GPU jobs ------------------------------------------------
    def augment_singles(self) -> None:
        jobs = self.jobs
        single = np.flatnonzero((jobs.gpu_count == 1) & (self.start <= self.now) & ~self.needs_res)
        unplaced = single[self.node_of[single] < 0]
        if len(unplaced) == 0 or not self.feas[unplaced].any():
            self.stats["augment"] = "not needed"
            return
        # Capacity available to the single-GPU jobs: free now + what singles took this round.
        placed_single = single[self.node_of[single] >= 0]
        cap = self.free_now.copy()
        np.add.at(cap, self.node_of[placed_single], 1)
        live = np.flatnonzero(cap > 0)
        # Job classes: identical feasibility rows (exact: hashed, then verified).
        if self.req_class is not None:
            _, jrep, jcls = np.unique(self.req_class[single], return_index=True, return_inverse=True)
            jcls, jrep = jcls.ravel().astype(np.int64), jrep.astype(np.int64)
        else:
            jcls, jrep = _row_classes(self._packed_rows()[single])
        n_jc = len(jrep)
        fr = np.take(self.feas[single[jrep]], live, axis=1)  # job classes × live nodes
        # Node classes: identical columns over the job classes.
        packed = np.ascontiguousarray(np.packbits(fr, axis=0).T)
        _, ncls_of_live, _ = _unique_rows(packed)
        n_nc = int(ncls_of_live.max()) + 1 if len(live) else 0
        ncls = np.full(self.nodes.count, -1, dtype=np.int64)
        ncls[live] = ncls_of_live
        nc_cap = np.bincount(ncls_of_live, weights=cap[live], minlength=n_nc).astype(np.int64)
        rep = np.zeros(n_nc, dtype=np.int64)
        rep[ncls_of_live] = np.arange(len(live))
        adj = fr[:, rep]  # job classes × node classes
        n_edges = int(adj.sum())
        self.stats.update(job_classes=n_jc, node_classes=n_nc, flow_edges=n_edges)
        if n_edges > MAX_FLOW_EDGES:
            self.stats["augment"] = "skipped: class graph too large"
            return
        # Current flow x[jc, nc] from greedy.
        is_placed = self.node_of[single] >= 0
        x = np.zeros((n_jc, n_nc), dtype=np.int64)
        np.add.at(x, (jcls[is_placed], ncls[self.node_of[single[is_placed]]]), 1)
        unplaced_per_jc = np.bincount(jcls[~is_placed], minlength=n_jc)
        residual_sink = nc_cap - x.sum(axis=0)
        # Residual network: S=0, job classes 1..n_jc, node classes next, T last.
        s, t = 0, n_jc + n_nc + 1
        big = len(single) + 1
        ji, ni = np.nonzero(adj)
        xi = x[ji, ni]
        rows = [np.zeros(n_jc, dtype=np.int64), 1 + ji, 1 + n_jc + ni[xi > 0], 1 + n_jc + np.arange(n_nc)]
        cols = [1 + np.arange(n_jc), 1 + n_jc + ni, 1 + ji[xi > 0], np.full(n_nc, t)]
        caps = [unplaced_per_jc, np.full(len(ji), big), xi[xi > 0], np.maximum(residual_sink, 0)]
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(caps)
        graph = coo_matrix((v.astype(np.int32), (r, c)), shape=(t + 1, t + 1)).tocsr()
        res = maximum_flow(graph, s, t, method="dinic")
        self.stats["augmented"] = int(res.flow_value)
        if res.flow_value == 0:
            self.stats["augment"] = "greedy was already maximal"
            return
        flow = res.flow.tocoo()
        net = np.zeros((n_jc, n_nc), dtype=np.int64)
        m = (flow.row >= 1) & (flow.row <= n_jc) & (flow.col > n_jc) & (flow.col < t)
        np.add.at(net, (flow.row[m] - 1, flow.col[m] - 1 - n_jc), flow.data[m])
        self._realise(single, jcls, ncls, x + net, cap)
        self.stats["augment"] = "max-flow"

    def _realise(self, single: IntA, jcls: IntA, ncls: IntA, quota: np.ndarray, cap: IntA) -> None:  # noqa: C901 — to split into named steps
        """Turn class-level flow into job → node placements, keeping greedy's nodes where possible."""
        quota = quota.copy()
        # Release the singles' slots; re-take them below.
        node_left = cap.copy()
        keep: list[tuple[int, int]] = []
        move: list[int] = []
        order = single[np.argsort(self.jobs.order[single], kind="stable")]
        pos_of = {int(j): i for i, j in enumerate(single)}
        for j in order:
            j = int(j)
            n = int(self.node_of[j])
            jc = int(jcls[pos_of[j]])
            if n >= 0 and quota[jc, ncls[n]] > 0:
                quota[jc, ncls[n]] -= 1
                node_left[n] -= 1
                keep.append((j, n))
            else:
                move.append(j)
        for j in move:
            if self.node_of[j] >= 0:
                n = int(self.node_of[j])
                for sl in self.slots_of.pop(j):
                    self.slot_free_at[n, sl] = -np.inf
                self.node_of[j] = -1
                self.free_now[n] = int((self.slot_free_at[n] <= self.now).sum())
        # Nodes per class, cheapest first (then best score).
        members: dict[int, list[int]] = {}
        for n in _best_order(self.keys[PLACE_CHEAPEST], self.base):
            c = int(ncls[n])
            if c >= 0 and node_left[n] > 0:
                members.setdefault(c, []).append(int(n))
        ptr = dict.fromkeys(members, 0)
        for j in move:
            jc = int(jcls[pos_of[j]])
            targets = np.flatnonzero(quota[jc] > 0)
            if len(targets) == 0:
                continue
            c = int(targets[0])
            lst = members[c]
            while node_left[lst[ptr[c]]] <= 0:
                ptr[c] += 1
            n = lst[ptr[c]]
            node_left[n] -= 1
            quota[jc, c] -= 1
            self._place(j, n)
            self.rerouted.add(j)

    # -- backfill ---------------------------------------------------------------------------------
    def backfill(self, order: IntA, static: BoolA | ClassRows) -> int:
        """Short work in the gaps before later holdings (as Slurm's backfill): a job starting now that is
        still unplaced may take a slot that is free now until a later lease starts, when it ends by then.
        `static`: feasibility without capacity. Each gap is used once. Returns the jobs placed."""
        gap = self.nodes.gap_until
        if gap is None:
            return 0
        placed = 0
        for j in order.tolist():
            if self.node_of[j] >= 0 or self.start[j] > self.now:
                continue
            cand = np.flatnonzero(static[j])
            if len(cand) == 0:
                continue
            end = float(self.end[j])
            g = int(self.jobs.gpu_count[j])
            usable = (self.slot_free_at[cand] <= self.now) | (gap[cand] >= end)
            ok = (usable.sum(axis=1) >= g) & self._res_ok(j, cand)
            if not ok.any():
                continue
            cand = cand[ok]
            keys = tuple(k[cand] for k in self.keys[int(self.group[j])])
            n = int(cand[_best_order(keys, self._score(j, cand, usable[ok].sum(axis=1)))[0]])
            # Tightest gaps first, then slots free for good.
            gaps = np.where(gap[n] >= end, gap[n], np.inf)
            slots = np.flatnonzero((self.slot_free_at[n] <= self.now) | (gap[n] >= end))
            chosen = sorted(int(s) for s in slots[np.argsort(gaps[slots], kind="stable")[:g]])
            for s in chosen:
                if gap[n, s] >= end:
                    gap[n, s] = -np.inf
                else:
                    self.slot_free_at[n, s] = end
            self.free_now[n] = int((self.slot_free_at[n] <= self.now).sum())
            self.slots_of[j] = chosen
            self.node_of[j] = n
            if self.needs_res[j]:
                self.res[:, n] -= self.need[:, j]
            self.backfilled.add(j)
            placed += 1
        return placed

    # -- preemption -------------------------------------------------------------------------------
    def preempt(  # noqa: C901 — to split into named steps
        self, pre: Preemptible, feas_static: BoolA | ClassRows
    ) -> dict[int, list[int]]:
        """Unplaced on-demand jobs may displace the lowest-bid interruptible leases on one node."""
        out: dict[int, list[int]] = {}
        if len(pre.lease_ids) == 0:
            return out
        by_node: dict[int, list[int]] = {}
        for k in np.argsort(pre.bid, kind="stable"):
            by_node.setdefault(int(pre.node_idx[k]), []).append(int(k))
        taken: set[int] = set()
        jobs = self.jobs
        cands = np.flatnonzero((self.node_of < 0) & (jobs.mode != MODE_INTERRUPTIBLE) & (self.start <= self.now))
        for j in cands[np.argsort(jobs.order[cands], kind="stable")].tolist():
            g = int(jobs.gpu_count[j])
            best: tuple[float, int, list[int]] | None = None
            for n in np.flatnonzero(feas_static[j]).tolist():
                if n not in by_node:
                    continue
                free = int(self.free_now[n])
                chosen: list[int] = []
                cost = 0.0
                res = self.res[:, n].copy()
                need = self.need[:, j]
                for k in by_node[n]:
                    if free >= g and (res >= need).all():
                        break
                    if k in taken:
                        continue
                    chosen.append(k)
                    free += int(pre.gpu_count[k])
                    cost += float(pre.bid[k])
                    if pre.resources is not None:
                        res += pre.resources[:, k]
                fits = free >= g and bool((res >= need).all())
                if fits and chosen and (best is None or (cost, len(chosen)) < (best[0], len(best[2]))):
                    best = (cost, n, chosen)
            if best is None:
                continue
            _, n, chosen = best
            for k in chosen:
                taken.add(k)
                for sl in pre.slots[k]:
                    self.slot_free_at[n, sl] = self.now
                if pre.resources is not None:
                    self.res[:, n] += pre.resources[:, k]
            self.free_now[n] = int((self.slot_free_at[n] <= self.now).sum())
            self._place(j, n)
            out[j] = [int(pre.lease_ids[k]) for k in chosen]
        return out


def _scan(
    order: IntA, p: int, row: BoolA, free: IntA, res: FloatA, need: FloatA | None, block: int = 64
) -> tuple[int, int]:
    """First node at or after position p of `order` that the job row allows and that has a free GPU (and
    the job's `need` of CPU/RAM/disk free in `res`, when it has one). Returns (new pointer, node) or
    (len, -1). Nodes before the pointer are full or infeasible for the class, and stay so within a greedy
    pass (slots and resources are only taken), so the pointer never moves back."""
    n = len(order)
    while p < n:
        blk = order[p : p + block]
        ok = row[blk] & (free[blk] > 0)
        if need is not None:
            ok &= (res[:, blk] >= need[:, None]).all(axis=0)
        k = int(ok.argmax())
        if ok[k]:
            return p + k, int(blk[k])
        p += len(blk)
        block = min(block * 2, 4096)
    return n, -1


def _row_classes(packed: np.ndarray) -> tuple[IntA, IntA]:
    """Class id per row of a packed-bits matrix and one representative row per class. Rows are hashed to
    64 bits and the grouping is verified byte for byte; a collision falls back to exact np.unique."""
    if len(packed) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pad = (-packed.shape[1]) % 8
    words = np.ascontiguousarray(
        np.concatenate([packed, np.zeros((len(packed), pad), dtype=np.uint8)], axis=1) if pad else packed
    ).view(np.uint64)
    mult = np.asarray(np.random.default_rng(777).integers(1, 2**63, size=words.shape[1], dtype=np.uint64))
    with np.errstate(over="ignore"):
        h = (words * (mult | np.uint64(1))[None, :]).sum(axis=1, dtype=np.uint64)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    inverse = inverse.ravel().astype(np.int64)
    if not (packed == packed[first[inverse]]).all():
        _, inverse, _ = _unique_rows(packed)
        first = np.zeros(int(inverse.max()) + 1, dtype=np.int64)
        first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    return inverse, first.astype(np.int64)


def _unique_rows(a: np.ndarray) -> tuple[np.ndarray, IntA, IntA]:
    """np.unique over rows of a 2-D uint8 array, fast (rows viewed as one opaque item each)."""
    a = np.ascontiguousarray(a)
    if a.shape[1] == 0:
        return a[:1], np.zeros(a.shape[0], dtype=np.int64), np.array([a.shape[0]])
    view = a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()
    uniq, inverse, counts = np.unique(view, return_inverse=True, return_counts=True)
    return uniq, inverse.astype(np.int64).ravel(), counts
