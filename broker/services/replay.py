"""A whole job in two calls, through the real booking, lease, agent and settlement services: for writing a market's
history in simulated time (the demo seed's months of settled usage, the simulator's financing year).

`job_run_start` books a job for the customer (escrow held as for any booking) and leases it on the given node at the
given price from now for `hours`; `job_run_finish`, called when the lease's period is over (the caller advances the
clock), has the node heartbeat once and its usage recorded for the whole period (the broker clock replayed from
the lease's start to its end), which activates the lease, ingests the usage, ends the lease and settles it
(customer escrow → platform fee, reserve, lenders' withholding
and the provider payable), exactly as a real agent's heartbeats would, only coarser. Callers decide about matching
rounds (a booking asks for one on commit; a caller replaying history usually wants none).
"""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from billing.services.metering import lease_clock_replay, usage_ingest
from broker.models import Lease
from broker.services.agent import agent_heartbeat
from broker.services.jobs import job_book
from broker.services.leases import lease_activate, lease_create, lease_end
from common.money import from_micros
from marketplace.models import Customer, Node, NodeHeartbeat


def job_run_start(
    *, customer: Customer, node: Node, gpu_count: int, hours: int, price_micros: int, key: str
) -> Lease | None:
    """Book and lease `gpu_count` GPUs of `node` for `hours` from now; None when `key` was booked before (idempotent:
    the first booking with that key stands)."""
    data = {
        "name": f"replay-{node.name}",
        "image": "ghcr.io/rigshift/replay:latest",
        "gpu_count": gpu_count,
        "gpu_models": [node.gpu_model.slug],
        "duration_hours": str(hours),
        "mode": "on_demand",
        "max_price": str(from_micros(micros=price_micros)),
        "verified_only": False,
    }
    job = job_book(customer=customer, data=data, idempotency_key=key)
    if Lease.objects.filter(job=job).exists() or job.state != "pending":
        return None
    now = timezone.now()
    return lease_create(
        job_id=job.pk,
        node_id=node.pk,
        gpu_slots=list(range(gpu_count)),
        price_micros=price_micros,
        starts_at=now,
        ends_at=now + timedelta(hours=hours),
    )


def job_run_finish(*, lease: Lease, utilisation: Decimal = Decimal("0.9")) -> None:
    """The node's agent reports the lease's whole period used and the workload exited (one heartbeat, at now)."""
    node = Node.objects.get(pk=lease.node_id)
    seq = (NodeHeartbeat.objects.filter(node=node).aggregate(top=Max("seq"))["top"] or 0) + 1
    end = min(timezone.now(), lease.ends_at)
    seconds = int((end - lease.starts_at).total_seconds())
    report = {
        "lease_id": lease.pk,
        "seq": 1,
        "gpu_seconds": seconds * lease.gpu_count,
        "utilisation": float(utilisation),
        "interval_start": lease.starts_at,
        "interval_end": end,
        "state": "exited",
    }
    # One heartbeat stands for the node's heartbeats through the period (the broker clock runs from the start to the
    # end: lease_clock_replay); the agent API's checks are for an agent's reports, and this is trusted history.
    with transaction.atomic():
        agent_heartbeat(node=node, seq=seq, now=timezone.now())
        lease_activate(lease_id=lease.pk, now=lease.starts_at)
        lease_clock_replay(lease_ref=lease.pk, until=end)
        usage_ingest(node_id=node.pk, reports=[report])
        lease_end(lease_id=lease.pk, reason="workload exited", complete_job=True, billed_until=end)
