"""Reads for the node agent API: what a node should run and stop, and its own leases."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db.models import Q
from django.utils import timezone

from broker.models import Job, Lease, LeaseState, SshKey
from broker.workload_templates import TEMPLATE_BY_SLUG, template_token
from marketplace.models import Node

# A lease is handed to the agent this long before its period begins, so the image can be pulled.
LEASE_START_LEAD = timedelta(minutes=5)
# Withdrawn leases stay in the stop list this long, so an agent that was away still stops them.
LEASE_STOP_WINDOW = timedelta(hours=1)

_LIVE = (LeaseState.RESERVED, LeaseState.ACTIVE)
_OVER = (LeaseState.ENDED, LeaseState.PREEMPTED, LeaseState.FAILED)


def agent_leases(*, node: Node, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """The node's leases to start and to stop (two queries).

    - start: reserved or active leases whose period has begun or begins within `LEASE_START_LEAD`
      and has not ended, with the workload (image, command, env, ports) and the GPU slots.
    - stop: leases ended, preempted or failed within `LEASE_STOP_WINDOW`, and live leases whose
      period is over (the agent stops those on time even before the broker ends them).
    """
    now = now or timezone.now()
    start_rows = (
        Lease.objects.filter(node_id=node.pk, state__in=_LIVE, starts_at__lte=now + LEASE_START_LEAD, ends_at__gt=now)
        .select_related("job")
        .order_by("starts_at", "id")
    )
    rows = list(start_rows)
    keys: dict[int, list[str]] = {}
    ssh_customers = {lease.job.customer_id for lease in rows if lease.job.ssh}
    for customer_id, key in SshKey.objects.filter(customer_id__in=ssh_customers).values_list(
        "customer_id", "public_key"
    ):
        keys.setdefault(customer_id, []).append(key)
    start = [
        {
            "lease_id": lease.pk,
            "job_id": lease.job_id,
            "image": lease.job.image,
            "command": lease.job.command,
            "env": _lease_env(lease.job),
            "ports": lease.job.ports or [],
            "ssh": lease.job.ssh,
            "ssh_keys": keys.get(lease.job.customer_id, []) if lease.job.ssh else [],
            "gpu_slots": list(lease.gpu_slots or []),
            "starts_at": lease.starts_at,
            "ends_at": lease.ends_at,
            "state": lease.state,
        }
        for lease in rows
    ]
    stop_rows = (
        Lease.objects.filter(node_id=node.pk)
        .filter(Q(state__in=_OVER, ended_at__gte=now - LEASE_STOP_WINDOW) | Q(state__in=_LIVE, ends_at__lte=now))
        .order_by("id")
        .values("id", "state", "end_reason", "ends_at")
    )
    stop = [
        {
            "lease_id": row["id"],
            "reason": row["end_reason"] or _default_reason(state=row["state"], ends_at=row["ends_at"], now=now),
            "state": row["state"],
        }
        for row in stop_rows
    ]
    return {"start": start, "stop": stop}


def _lease_env(job: Job) -> dict[str, str]:
    """The job's environment, plus the access token its template's service expects (derived per job)."""
    env = dict(job.env or {})
    template = TEMPLATE_BY_SLUG.get(job.template)
    if template is not None and template.token_env and template.token_env not in env:
        env[template.token_env] = template_token(job_id=job.pk)
    return env


def _default_reason(*, state: str, ends_at: datetime, now: datetime) -> str:
    if state in _LIVE and ends_at <= now:
        return "lease period over"
    reasons: dict[str, str] = {
        LeaseState.ENDED: "lease ended",
        LeaseState.PREEMPTED: "preempted by higher-priority work",
        LeaseState.FAILED: "lease failed",
    }
    return reasons.get(state, state)


class OwnedLease(NamedTuple):
    state: str
    job_id: int
    gpu_count: int
    starts_at: datetime
    ends_at: datetime
    activated_at: datetime | None
    ended_at: datetime | None
    node_disk_gb: int = 0  # the node's limits the report caps need, read in the same query (the agent API's
    node_inet_up_mbps: int = 0  # node holds only its id: the cached token lookup)


def agent_node_leases(*, node: Node, lease_ids: Iterable[int]) -> dict[int, OwnedLease]:
    """{lease_id: OwnedLease} for those of `lease_ids` that are leases of `node` (one query).

    Ids of other nodes' leases are simply absent, so a node can never touch another node's lease.
    """
    ids = sorted(set(lease_ids))
    if not ids:
        return {}
    rows = Lease.objects.filter(node_id=node.pk, pk__in=ids).values_list(
        "id",
        "state",
        "job_id",
        "gpu_count",
        "starts_at",
        "ends_at",
        "activated_at",
        "ended_at",
        "node__disk_gb",
        "node__inet_up_mbps",
    )
    return {row[0]: OwnedLease(*row[1:]) for row in rows}
