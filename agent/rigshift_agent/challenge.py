"""The compute challenge: work the broker can check, sized to the claimed GPU, timed by the broker's own clock.

One definition for both sides: the agent solves (`solve`), the server recomputes a few rows (`expected_row`)
and checks them against the answer (`row_verdict`).

The work, for each GPU g and each item i (a batch filling most of the claimed VRAM):

    A = gen(g, i, "A")  (m × k, entries -1/0/1)     B = gen(g, i, "B")  (k × k, entries -1/0/1)
    repeat `rounds` times:  A = sign(A @ B)
    F = A @ V   (m × 2 fingerprints; V = gen(g, "V"), k × 2)

`gen` is a counter-based generator (a few multiply-mod-prime and xor-shift steps of the element's index
and the seed), so any element can be made on either side without making the others. With k ≤ 2048 every
product and every partial sum is an integer of at most 2048 in magnitude: exact in FP16 and FP32, whatever
order a GPU library sums in, so the GPU's result equals the server's bit for bit.

Answer in two steps, so the agent cannot compute only the rows that will be checked:
1. the agent commits: the Merkle root over one leaf per (g, i) — the SHA-256 of the item's fingerprints —
   and the seconds its multiplications took;
2. the server then draws the rows to check; for each the agent reveals the row, the item's fingerprints and
   the Merkle path. The server recomputes the row on its CPU (a row of A times B per round: cheap).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

K_MAX = 2048  # the inner dimension that keeps every sum exact in FP16
FINGERPRINTS = 2
_PRIME = 2**31 - 1
_WHICH = {"A": 0, "B": 1, "V": 2}


@dataclass(frozen=True)
class ChallengeSpec:
    """What the server asks for (the agent API's challenge object)."""

    challenge_id: int
    seed: str
    gpus: int
    items: int  # per GPU
    m: int
    k: int
    rounds: int
    deadline_s: float

    @property
    def flops_per_gpu(self) -> float:
        return float(self.rounds) * self.items * 2.0 * self.m * self.k * self.k

    @property
    def bytes_per_gpu(self) -> int:
        return self.items * (2 * self.m * self.k + self.k * self.k) * 2

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChallengeSpec:
        return cls(
            challenge_id=int(data["challenge_id"]),
            seed=str(data["seed"]),
            gpus=int(data["gpus"]),
            items=int(data["items"]),
            m=int(data["m"]),
            k=int(data["k"]),
            rounds=int(data["rounds"]),
            deadline_s=float(data["deadline_s"]),
        )


# ------------------------------------------------------------------------------------------------ generator
def seed_keys(seed: str) -> tuple[int, int, int, int]:
    digest = hashlib.sha256(f"rigshift-challenge:{seed}".encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") & (2**30 - 1) | 1 for i in (0, 4, 8, 12))  # type: ignore[return-value]


def matrix_base(*, gpu: int, item: int, which: str, items: int) -> int:
    """The counter of element (0, 0) of a matrix; element (r, c) of an R × C matrix is base + r·C + c."""
    return (((gpu * items + item) * 3) + _WHICH[which]) << 32


def mix(counters: Any, keys: tuple[int, int, int, int]) -> Any:
    """-1/0/1 from int64 counters; the same integer steps on numpy, cupy and torch arrays (all < 2**63)."""
    k1, k2, k3, k4 = keys
    x = ((counters & _PRIME) * k1 + (counters >> 31) * k2 + k3) % _PRIME
    x = x ^ (x >> 13)
    x = (x * k4 + k2) % _PRIME
    x = x ^ (x >> 11)
    x = (x * k1 + k3) % _PRIME
    return (x >> 7) % 3 - 1


def gen_numpy(spec: ChallengeSpec, *, gpu: int, item: int, which: str, rows: slice | int | None = None) -> np.ndarray:
    """A generated matrix (or some of its rows) as a float32 numpy array."""
    shape = {"A": (spec.m, spec.k), "B": (spec.k, spec.k), "V": (spec.k, FINGERPRINTS)}[which]
    base = matrix_base(gpu=gpu, item=item, which=which, items=spec.items)
    row_ids = np.arange(shape[0], dtype=np.int64)
    if rows is not None:
        row_ids = np.atleast_1d(row_ids[rows])
    counters = base + row_ids[:, None] * shape[1] + np.arange(shape[1], dtype=np.int64)[None, :]
    return np.asarray(mix(counters, seed_keys(spec.seed)), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ commitment
def leaf_hash(*, gpu: int, item: int, fingerprints: np.ndarray) -> bytes:
    data = np.ascontiguousarray(fingerprints, dtype="<i2").tobytes()
    return hashlib.sha256(b"leaf" + gpu.to_bytes(4, "little") + item.to_bytes(4, "little") + data).digest()


def _parent(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"node" + left + right).digest()


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        pairs = [(level[i], level[i + 1] if i + 1 < len(level) else level[i]) for i in range(0, len(level), 2)]
        levels.append([_parent(a, b) for a, b in pairs])
    return levels


def merkle_path(levels: list[list[bytes]], index: int) -> list[str]:
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        path.append((level[sibling] if sibling < len(level) else level[index]).hex())
        index //= 2
    return path


def merkle_root_from(leaf: bytes, index: int, path: Sequence[str]) -> bytes:
    node = leaf
    for sibling_hex in path:
        sibling = bytes.fromhex(sibling_hex)
        node = _parent(node, sibling) if index % 2 == 0 else _parent(sibling, node)
        index //= 2
    return node


def encode_ints(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<i2").tobytes()).decode()


def decode_ints(text: str, *, shape: tuple[int, ...]) -> np.ndarray:
    raw = base64.b64decode(text.encode(), validate=True)
    count = int(np.prod(shape))
    if len(raw) != 2 * count:
        raise ValueError(f"expected {count} values, got {len(raw) // 2}")
    return np.frombuffer(raw, dtype="<i2").astype(np.int32).reshape(shape)


# ------------------------------------------------------------------------------------------------ solving
RowSource = Callable[[int, int, int], np.ndarray]
FINALS_KEPT_BYTES = 256 * 1024**2  # the numpy path keeps final rows up to this much; beyond, they are recomputed


@dataclass
class Computed:
    fingerprints: dict[tuple[int, int], np.ndarray]  # (gpu, item) → m × 2 int16, in the order computed
    row_of: RowSource  # (gpu, item, row) → the final row as this backend computed it


@dataclass
class Solution:
    digest: str
    compute_s: float
    backend: str
    computed: Computed | None = field(default=None, repr=False)
    levels: list[list[bytes]] = field(default_factory=list, repr=False)
    gave_up: bool = False

    def reveal(self, spec: ChallengeSpec, picks: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
        """The requested rows with their item's fingerprints and Merkle path."""
        assert self.computed is not None
        out = []
        for gpu, item, row in picks:
            out.append(
                {
                    "gpu": gpu,
                    "item": item,
                    "row": row,
                    "values": encode_ints(self.computed.row_of(gpu, item, row)),
                    "fingerprints": encode_ints(self.computed.fingerprints[(gpu, item)]),
                    "path": merkle_path(self.levels, gpu * spec.items + item),
                }
            )
        return out


Backend = Callable[[ChallengeSpec, Callable[[], bool]], Computed]


def _recomputed_row(spec: ChallengeSpec) -> RowSource:
    return lambda gpu, item, row: expected_row(spec, gpu=gpu, item=item, row=row)[0]


def _numpy_backend(xp: Any, to_host: Callable[[Any], np.ndarray], dtype: Any) -> Backend:
    """numpy on the CPU, or cupy on the GPU (the same array API): item by item, bounded memory."""

    def run(spec: ChallengeSpec, over: Callable[[], bool]) -> Computed:
        keys = seed_keys(spec.seed)
        prints: dict[tuple[int, int], np.ndarray] = {}
        finals: dict[tuple[int, int], np.ndarray] = {}
        keep = spec.gpus * spec.items * spec.m * spec.k <= FINALS_KEPT_BYTES
        recompute = _recomputed_row(spec)
        for gpu in range(spec.gpus):
            v = _gen_xp(xp, spec, keys, gpu=gpu, item=0, which="V", dtype=dtype)
            for item in range(spec.items):
                a = _gen_xp(xp, spec, keys, gpu=gpu, item=item, which="A", dtype=dtype)
                b = _gen_xp(xp, spec, keys, gpu=gpu, item=item, which="B", dtype=dtype)
                for _ in range(spec.rounds):
                    a = xp.sign(a @ b)
                prints[(gpu, item)] = to_host(a @ v).astype(np.int16)
                if keep:
                    finals[(gpu, item)] = to_host(a).astype(np.int16)
                if over():
                    break
            else:
                continue
            break

        def row_of(gpu: int, item: int, row: int) -> np.ndarray:
            final = finals.get((gpu, item))
            return final[row] if final is not None else recompute(gpu, item, row)

        return Computed(fingerprints=prints, row_of=row_of)

    return run


def _gen_xp(xp: Any, spec: ChallengeSpec, keys: tuple[int, int, int, int], **where: Any) -> Any:
    dtype = where.pop("dtype")
    rows, cols = {"A": (spec.m, spec.k), "B": (spec.k, spec.k), "V": (spec.k, FINGERPRINTS)}[where["which"]]
    base = matrix_base(items=spec.items, **where)
    counters = base + xp.arange(rows * cols, dtype=xp.int64).reshape(rows, cols)
    return mix(counters, keys).astype(dtype)


def _torch_backend(torch: Any) -> Backend:  # noqa: C901 — to split into named steps
    """PyTorch on CUDA/ROCm devices: each GPU's batch in one tensor, rounds launched on all GPUs in turn."""

    def gen(spec: ChallengeSpec, keys: tuple[int, int, int, int], device: Any, **where: Any) -> Any:
        rows, cols = {"A": (spec.m, spec.k), "B": (spec.k, spec.k), "V": (spec.k, FINGERPRINTS)}[where["which"]]
        base = matrix_base(items=spec.items, **where)
        counters = base + torch.arange(rows * cols, dtype=torch.int64, device=device).reshape(rows, cols)
        return mix(counters, keys).to(torch.float16)

    def run(spec: ChallengeSpec, over: Callable[[], bool]) -> Computed:
        keys = seed_keys(spec.seed)
        state = []
        for gpu in range(spec.gpus):
            device = torch.device(f"cuda:{gpu}")
            a = torch.empty((spec.items, spec.m, spec.k), dtype=torch.float16, device=device)
            b = torch.empty((spec.items, spec.k, spec.k), dtype=torch.float16, device=device)
            for item in range(spec.items):
                a[item] = gen(spec, keys, device, gpu=gpu, item=item, which="A")
                b[item] = gen(spec, keys, device, gpu=gpu, item=item, which="B")
            state.append((a, b, torch.empty_like(a), gen(spec, keys, device, gpu=gpu, item=0, which="V")))
        for _ in range(spec.rounds):
            for a, b, t, _v in state:  # kernels are asynchronous: the GPUs run their rounds side by side
                torch.bmm(a, b, out=t)
                torch.sign(t, out=a)
        for gpu in range(spec.gpus):
            torch.cuda.synchronize(torch.device(f"cuda:{gpu}"))
        prints: dict[tuple[int, int], np.ndarray] = {}
        for gpu, (a, _b, _t, v) in enumerate(state):
            f = torch.matmul(a, v).to(torch.int16).cpu().numpy()
            for item in range(spec.items):
                prints[(gpu, item)] = f[item]

        def row_of(gpu: int, item: int, row: int) -> np.ndarray:
            return np.asarray(state[gpu][0][item, row].to(torch.int16).cpu().numpy())

        return Computed(fingerprints=prints, row_of=row_of)

    return run


def pick_backend(*, gpus: int) -> tuple[str, Backend]:
    """torch (CUDA or ROCm) with enough devices, else cupy, else numpy on the CPU."""
    try:
        torch = importlib.import_module("torch")
        if torch.cuda.is_available() and torch.cuda.device_count() >= gpus:
            return "torch", _torch_backend(torch)
    except ImportError:
        pass
    try:
        cupy = importlib.import_module("cupy")
        if cupy.cuda.runtime.getDeviceCount() >= 1:
            return "cupy", _numpy_backend(cupy, cupy.asnumpy, cupy.float16)
    except Exception as exc:  # noqa: BLE001 — cupy missing or no CUDA runtime
        if not isinstance(exc, ImportError):
            logging.getLogger("rigshift_agent").info("cupy present but unusable (%s): computing on the CPU", exc)
    return "numpy", numpy_backend()


def numpy_backend() -> Backend:
    return _numpy_backend(np, np.asarray, np.float32)


def solve(
    spec: ChallengeSpec,
    *,
    backend: tuple[str, Backend] | None = None,
    simulated_tflops: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Solution:
    """Do the work and commit to it; stop at the deadline (the answer then says it gave up).

    `simulated_tflops` (simulate mode): the work is done on the CPU all the same, so the answer is correct, and
    the time reported is what a card of that speed would take."""
    if backend is None:
        backend = ("numpy", numpy_backend()) if simulated_tflops else pick_backend(gpus=spec.gpus)
    name, run = backend
    start = clock()
    computed = run(spec, lambda: clock() - start > spec.deadline_s)
    elapsed = clock() - start
    gave_up = len(computed.fingerprints) < spec.gpus * spec.items
    if simulated_tflops:
        elapsed = spec.flops_per_gpu / (simulated_tflops * 1e12)
    leaves = [leaf_hash(gpu=g, item=i, fingerprints=f) for (g, i), f in sorted(computed.fingerprints.items())]
    levels = merkle_levels(leaves) if leaves else [[b""]]
    return Solution(
        digest="" if gave_up else levels[-1][0].hex(),
        compute_s=float(f"{max(elapsed, 1e-12):.6g}"),
        backend=f"simulated ({simulated_tflops:g} TFLOPS)" if simulated_tflops else name,
        computed=computed,
        levels=levels,
        gave_up=gave_up,
    )


# ------------------------------------------------------------------------------------------------ checking
@lru_cache(maxsize=4)
def _b_matrix(spec: ChallengeSpec, gpu: int, item: int) -> np.ndarray:
    return gen_numpy(spec, gpu=gpu, item=item, which="B")  # k × k: the costly part of checking a row


def expected_row(spec: ChallengeSpec, *, gpu: int, item: int, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(final row, its fingerprints) recomputed on the CPU: `rounds` products of one row with B."""
    a = gen_numpy(spec, gpu=gpu, item=item, which="A", rows=row)[0]
    b = _b_matrix(spec, gpu, item)
    for _ in range(spec.rounds):
        a = np.sign(a @ b)
    v = gen_numpy(spec, gpu=gpu, item=0, which="V")
    return a.astype(np.int32), (a @ v).astype(np.int32)


def row_verdict(spec: ChallengeSpec, *, digest: str, reveal: dict[str, Any]) -> str:
    """'' when one revealed row is right and bound to the committed digest, else what is wrong."""
    gpu, item, row = int(reveal["gpu"]), int(reveal["item"]), int(reveal["row"])
    where = f"GPU {gpu}, item {item}, row {row}"
    try:
        values = decode_ints(str(reveal["values"]), shape=(spec.k,))
        prints = decode_ints(str(reveal["fingerprints"]), shape=(spec.m, FINGERPRINTS))
    except (ValueError, TypeError) as exc:
        return f"{where}: malformed reveal ({exc})"
    right_row, right_prints = expected_row(spec, gpu=gpu, item=item, row=row)
    wrong = int(np.count_nonzero(values != right_row))
    if wrong:
        return f"{where}: wrong result ({wrong} of {spec.k} entries differ from the server's)"
    if not np.array_equal(prints[row], right_prints):
        return f"{where}: the committed fingerprints do not belong to this row"
    leaf = leaf_hash(gpu=gpu, item=item, fingerprints=prints)
    root = merkle_root_from(leaf, gpu * spec.items + item, [str(p) for p in reveal.get("path") or []])
    if root.hex() != digest:
        return f"{where}: the digest does not match the revealed fingerprints"
    return ""
