"""Failover: a node that went offline loses its leases; their jobs go back to pending.

Each reserved/active lease on the node fails through `lease_fail` (the job returns to pending
with a JobEvent and retries+1, or fails when its retry budget is spent, with the escrow released;
billing settles the lease and applies the SLA credit). Failed leases stay failed: a node that
comes back starts with free GPUs and no lease is resurrected. The node's reliability reflects the
outage through its missing uptime (marketplace.services.reliability).
"""

from __future__ import annotations

import logging
from typing import Any

from broker import dispatch
from broker.models import Lease
from broker.services.leases import HOLDING_STATES, lease_fail
from marketplace.models import NodeStatus

log = logging.getLogger(__name__)


def node_failover(*, node_id: int, reason: str = "node went offline") -> int:
    """Fail every lease the node holds. Returns how many leases failed now (0 on a repeat)."""
    lease_ids = list(
        Lease.objects.filter(node_id=node_id, state__in=HOLDING_STATES).order_by("pk").values_list("pk", flat=True)
    )
    return sum(1 for lease_id in lease_ids if lease_fail(lease_id=lease_id, reason=reason))


def nodes_failover_sweep() -> int:
    """Safety net (beat): fail over leases still held on offline nodes. The node_failover task sent when a node
    went offline can be lost: a worker SIGKILLed mid-task leaves it unacknowledged until the broker's visibility
    timeout (an hour), and a Redis restart without persistence drops it; the node is already offline, so the
    offline sweep will not send it again. Idempotent with node_failover (a lease fails once)."""
    node_ids = (
        Lease.objects.filter(state__in=HOLDING_STATES, node__status=NodeStatus.OFFLINE)
        .order_by("node_id")
        .values_list("node_id", flat=True)
        .distinct()
    )
    return sum(node_failover(node_id=node_id) for node_id in list(node_ids))


def on_node_went_offline(sender: Any, *, node_id: int, **kwargs: Any) -> None:
    """Receiver of marketplace.signals.node_went_offline (sent on commit): fail over via a task."""
    dispatch.node_failover(node_id)
