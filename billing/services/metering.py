"""Metering: heartbeat usage reports become usage records exactly once.

PLACEHOLDER INTERFACE — the billing work replaces the body. The agent API calls this with the
per-lease reports of one heartbeat.
"""

from collections.abc import Sequence
from typing import Any


def usage_ingest(*, node_id: int, reports: Sequence[dict[str, Any]]) -> int:
    """Record each report ({lease_id, seq, gpu_seconds, utilisation, interval_start, interval_end})
    once, keyed by (node, lease, seq). Returns how many were new."""
    return 0
