"""Host ports: can this machine bind the node's port range (the agent at start, and `rigshift-agent doctor`)?"""

from __future__ import annotations

import socket

SAMPLE = 5  # ports tried: the first, the last and a few between


def _sample(low: int, high: int) -> list[int]:
    if high <= low:
        return [low]
    step = max(1, (high - low) // (SAMPLE - 1))
    return sorted({*range(low, high + 1, step), high})[: SAMPLE + 1]


def ports_unbindable(port_range: tuple[int, int]) -> str:
    """'' when a sample of the range can be bound on all interfaces; else which port failed and why."""
    low, high = port_range
    for port in _sample(low, high):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104 — Docker publishes on all interfaces
            except OSError as exc:
                return f"port {port}: {exc.strerror or exc}"
    return ""
