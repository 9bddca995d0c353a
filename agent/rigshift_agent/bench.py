"""`rigshift-agent bench`: what the card really does, measured through PyTorch with CUDA when present.

Matmul throughput: dense FP16 (tensor cores) matrix multiplies, TFLOPS = 2·n³·iterations / seconds.
Memory bandwidth: device-to-device copies of a large buffer, GB/s = 2·bytes·iterations / seconds (read + write).
Without PyTorch or CUDA nothing is measured and the result says so (never an invented figure).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class BenchResult:
    measured: bool
    tflops: float | None = None
    mem_bandwidth_gbs: float | None = None
    device: str = ""
    note: str = ""

    def report(self) -> dict[str, float | None]:
        """The agent API's `benchmark` object."""
        return {"tflops": self.tflops, "mem_bandwidth_gbs": self.mem_bandwidth_gbs}


def _torch() -> Any | None:
    try:
        import torch  # optional: only `bench` needs it
    except ImportError:
        return None
    return torch


def bench(*, device_index: int = 0, size: int = 8192, seconds: float = 2.0) -> BenchResult:
    torch = _torch()
    if torch is None:
        return BenchResult(measured=False, note="not measured: PyTorch is not installed")
    if not torch.cuda.is_available():
        return BenchResult(measured=False, note="not measured: PyTorch sees no CUDA device")
    device = torch.device(f"cuda:{device_index}")
    name = str(torch.cuda.get_device_name(device))
    tflops = _matmul_tflops(torch, device, size=size, seconds=seconds)
    bandwidth = _copy_gbs(torch, device, n_bytes=1 << 30, seconds=seconds)
    torch.cuda.empty_cache()
    return BenchResult(
        measured=True,
        tflops=round(tflops, 1),
        mem_bandwidth_gbs=round(bandwidth, 1),
        device=name,
        note=f"FP16 matmul {size}x{size}; 1 GiB device copy",
    )


def _matmul_tflops(torch: Any, device: Any, *, size: int, seconds: float) -> float:
    a = torch.randn(size, size, device=device, dtype=torch.float16)
    b = torch.randn(size, size, device=device, dtype=torch.float16)
    return _timed(torch, lambda: torch.mm(a, b), seconds=seconds, work=2.0 * size**3) / 1e12


def _copy_gbs(torch: Any, device: Any, *, n_bytes: int, seconds: float) -> float:
    src = torch.empty(n_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return _timed(torch, lambda: dst.copy_(src), seconds=seconds, work=2.0 * n_bytes) / 1e9


def _timed(torch: Any, op: Any, *, seconds: float, work: float) -> float:
    """Work per second of `op`, after a warm-up, run for about `seconds`."""
    for _ in range(3):
        op()
    torch.cuda.synchronize()
    iterations = 0
    start = time.perf_counter()
    while True:
        for _ in range(10):
            op()
        iterations += 10
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return work * iterations / elapsed
