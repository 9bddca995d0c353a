"""The node agent's state changes: register (hardware report) and heartbeat (liveness and usage).

A heartbeat is keyed by (node, seq): the first one with a sequence number is applied in one
transaction (heartbeat row, node online, uptime, broker clock, lease activation, usage to billing); a repeated
sequence number changes nothing and is answered `duplicate=True`.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import UsageAnomalyKind
from billing.services.metering import (
    DEFAULT_EGRESS_BYTES_PER_S,
    lease_clock_advance,
    report_window_problem,
    usage_anomaly_record,
    usage_ingest,
)
from broker.models import LeaseState
from broker.selectors.agent import OwnedLease, agent_node_leases
from broker.services.agent_workload import lease_logs_append, lease_phases_apply
from broker.services.leases import lease_activate, lease_exit
from common.errors import ValidationFailed
from marketplace.models import Node, NodeStatus
from marketplace.services.heartbeats import HeartbeatRecord, node_heartbeat_record
from marketplace.services.verification import node_agent_report_apply

logger = logging.getLogger(__name__)

# Slack on the GPU-seconds cap of one report (clock skew between the agent's interval and its counters).
GPU_SECONDS_SLACK = 1.02


@dataclass(frozen=True)
class RegisterResult:
    node_id: int
    verified: bool
    hardware_mismatch: str
    benchmark_flag: str
    heartbeat_interval_s: int
    public_host: str = ""
    port_range: tuple[int, int] = (40000, 40999)


def agent_register(*, node: Node, report: dict[str, Any]) -> RegisterResult:
    """Store the agent's hardware report on its node and check it against the registration.

    `report` is the validated register body (JSON-safe). The node goes online; a hardware
    mismatch is recorded and blocks verification (see marketplace.services.verification).
    """
    result = node_agent_report_apply(node=node, report=report)
    return RegisterResult(
        node_id=node.pk,
        verified=result.node.verified,
        hardware_mismatch=result.hardware_mismatch,
        benchmark_flag=result.benchmark_flag,
        heartbeat_interval_s=settings.RIGSHIFT_HEARTBEAT_INTERVAL_S,
        public_host=result.node.public_host,
        port_range=(result.node.port_range_start, result.node.port_range_end),
    )


@dataclass(frozen=True)
class HeartbeatResult:
    accepted: bool
    duplicate: bool
    next_heartbeat_s: int
    uptime_added_s: int = 0
    activated_leases: list[int] = field(default_factory=list)
    ended_leases: list[int] = field(default_factory=list)
    ignored_leases: list[dict[str, Any]] = field(default_factory=list)
    max_seq: int | None = None  # on a duplicate: the highest seq received, for an agent that lost its state
    challenge_pending: bool = False


class TokenRefused(Exception):
    """The node row no longer carries the token the request authenticated with (revoked or rotated)."""


class _Refused(Exception):
    def __init__(self, *, message: str, code: str, lease_id: int, job_id: int) -> None:
        super().__init__(message)
        self.message, self.code, self.lease_id, self.job_id = message, code, lease_id, job_id


def _check_reports(
    *, node: Node, reports: Sequence[dict[str, Any]], owned: dict[int, OwnedLease], now: datetime
) -> None:
    """Refuse usage a lease cannot have produced (THE RULE, billing/services/metering.py): an interval outside the
    lease's active window or in the future, more GPU-seconds than its GPUs over the interval, more storage than the
    listing's disk or more egress than its upload bandwidth allows. Raises _Refused (the heartbeat rolls back)."""
    for report in reports:
        lease = owned[report["lease_id"]]
        start, end = report["interval_start"], report["interval_end"]
        span = (end - start).total_seconds()
        problem = report_window_problem(
            start=start,
            end=end,
            lease_starts_at=lease.starts_at,
            lease_ends_at=lease.ends_at,
            activated_at=lease.activated_at,
            now=now,
            heartbeat_interval_s=settings.RIGSHIFT_HEARTBEAT_INTERVAL_S,
        )
        code = "usage_outside_lease"
        if not problem and report["gpu_seconds"] > span * lease.gpu_count * GPU_SECONDS_SLACK + 1:
            problem = (
                f"{report['gpu_seconds']:g} GPU-seconds is more than its {lease.gpu_count} GPU(s) can use in a "
                f"{span:g}-second interval"
            )
            code = "usage_too_high"
        storage = report.get("storage_gb") or 0
        if not problem and storage and node.disk_gb and storage > node.disk_gb:
            problem, code = (
                f"{storage:g} GB of storage is more than the node's {node.disk_gb} GB disk",
                "usage_too_high",
            )
        egress_cap = (node.inet_up_mbps * 125_000 or DEFAULT_EGRESS_BYTES_PER_S) * (span + 1) * GPU_SECONDS_SLACK
        if not problem and (report.get("egress_bytes") or 0) > egress_cap:
            problem = (
                f"{report['egress_bytes']} bytes of egress is more than the node's upload link can send in {span:g} s"
            )
            code = "usage_too_high"
        if problem:
            message = f"Lease {report['lease_id']} report {report['seq']}: {problem}."
            raise _Refused(message=message, code=code, lease_id=report["lease_id"], job_id=lease.job_id)


def _ignored(
    *,
    leases: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    logs: Sequence[dict[str, Any]],
    owned: dict[int, OwnedLease],
) -> list[dict[str, Any]]:
    """What the heartbeat said about leases that are not this node's (nothing of it is applied)."""
    ignored = [
        {"lease_id": r["lease_id"], "seq": r["seq"], "reason": "not a lease of this node"}
        for r in leases
        if r["lease_id"] not in owned
    ]
    foreign_logs = sorted({x["lease_id"] for x in logs if x["lease_id"] not in owned})
    ignored += [{"lease_id": i, "seq": 0, "reason": "log lines for a lease of another node"} for i in foreign_logs]
    foreign_events = sorted({e["lease_id"] for e in events if e["lease_id"] not in owned})
    ignored += [{"lease_id": i, "seq": 0, "reason": "phase for a lease of another node"} for i in foreign_events]
    return ignored


def _apply_reports(
    *,
    node: Node,
    leases: Sequence[dict[str, Any]],
    now: datetime,
    events: Sequence[dict[str, Any]] = (),
    logs: Sequence[dict[str, Any]] = (),
) -> tuple[list[int], list[int], list[dict[str, Any]]]:
    """Inside the heartbeat's transaction: check the node's own reports (raises _Refused), record workload
    phases, activate the leases they start, record the usage and the log lines, end the leases whose workload
    exited (completing or failing the job by its exit code). Returns (activated, ended, ignored)."""
    mentioned = [item["lease_id"] for item in [*leases, *events, *logs]]
    owned = agent_node_leases(node=node, lease_ids=mentioned)
    own_reports = [report for report in leases if report["lease_id"] in owned]
    if own_reports and node.get_deferred_fields() & {"disk_gb", "inet_up_mbps"}:
        # the agent API's node holds only its id (cached token lookup): the report caps need two of its fields,
        # which came with the lease rows (no query per deferred attribute)
        first = owned[own_reports[0]["lease_id"]]
        node.disk_gb, node.inet_up_mbps = first.node_disk_gb, first.node_inet_up_mbps
    _check_reports(node=node, reports=own_reports, owned=owned, now=now)
    ignored = _ignored(leases=leases, events=events, logs=logs, owned=owned)
    lease_phases_apply(events=events, owned=owned)
    # a lease starts on a report of it running or of usage; a zero-usage "exited" report is the agent
    # closing a lease it never started (e.g. withdrawn before it began): that must not activate it
    started = {r["lease_id"] for r in own_reports if r["state"] == "running" or r["gpu_seconds"] > 0}
    activated = [
        lease_id
        for lease_id in sorted(started)
        if owned[lease_id].state == LeaseState.RESERVED and lease_activate(lease_id=lease_id, now=now)
    ]
    if own_reports:
        usage_ingest(node_id=node.pk, reports=own_reports)
    lease_logs_append(lines=logs, owned=owned)
    exits = {r["lease_id"]: r for r in own_reports if r["state"] == "exited"}
    # the workload is over: free the GPUs now and settle, so no capacity is held after it closed; the exit
    # report may only shorten the billed time (the broker clock stops at its end)
    ended = [
        lease_id
        for lease_id in sorted(exits)
        if lease_exit(
            lease_id=lease_id,
            exit_code=exits[lease_id].get("exit_code"),
            reason=exits[lease_id].get("reason") or "exited",
            detail=exits[lease_id].get("detail") or "",
            billed_until=min(exits[lease_id]["interval_end"], now),
        )
    ]
    return activated, ended, ignored


def agent_heartbeat(
    *,
    node: Node,
    seq: int,
    status: str = "ok",
    leases: Sequence[dict[str, Any]] = (),
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
    token_hash: str | None = None,
    events: Sequence[dict[str, Any]] = (),
    logs: Sequence[dict[str, Any]] = (),
) -> HeartbeatResult:
    """Apply heartbeat `seq` of `node` once, in one transaction (`_heartbeat_apply`): the node's part (one
    statement on PostgreSQL), the broker clock of its running leases (THE RULE, billing/services/metering.py),
    then `leases` (validated usage reports: {lease_id, seq, gpu_seconds, utilisation, interval_start, interval_end
    (datetimes), state}), `events` (workload phases) and `logs` (output lines). Reports for other nodes' leases are
    ignored (`ignored_leases`); one the lease cannot have produced refuses the whole heartbeat (400, nothing
    recorded, a UsageAnomaly for staff); the rest are metered (`usage_ingest`), activate a reserved lease, and an
    `exited` one ends the lease (`lease_exit`). A repeated `seq` answers `duplicate=True` and writes nothing; with
    `token_hash` (the agent API), a token the node row no longer carries raises `TokenRefused`, writing nothing."""
    now = now or timezone.now()
    interval = settings.RIGSHIFT_HEARTBEAT_INTERVAL_S
    try:
        record, (activated, ended, ignored) = _heartbeat_apply(
            node=node,
            seq=seq,
            status=status,
            leases=leases,
            events=events,
            logs=logs,
            payload=payload,
            now=now,
            token_hash=token_hash,
        )
    except _Refused as refused:
        _refusal_record(node=node, refused=refused)
        raise ValidationFailed(
            refused.message + " The heartbeat was refused; nothing of it was recorded.", code=refused.code
        ) from None
    if record.duplicate:
        return HeartbeatResult(
            accepted=True,
            duplicate=True,
            next_heartbeat_s=interval,
            max_seq=record.max_seq,
            challenge_pending=record.challenge_pending,
        )
    node.status, node.last_heartbeat_at = NodeStatus.ONLINE, record.seen_at
    if ignored:
        logger.warning("node %s reported leases that are not its own: %s", node.pk, ignored)
    return HeartbeatResult(
        accepted=True,
        duplicate=False,
        next_heartbeat_s=interval,
        uptime_added_s=record.uptime_added_s,
        activated_leases=activated,
        ended_leases=ended,
        ignored_leases=ignored,
        challenge_pending=record.challenge_pending,
    )


def _heartbeat_apply(
    *,
    node: Node,
    seq: int,
    status: str,
    leases: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    logs: Sequence[dict[str, Any]],
    payload: dict[str, Any] | None,
    now: datetime,
    token_hash: str | None,
) -> tuple[HeartbeatRecord, tuple[list[int], list[int], list[dict[str, Any]]]]:
    """The heartbeat's transaction: the node's part, then (a new heartbeat only) the broker clock and the reports.
    Raises TokenRefused, or _Refused (everything rolls back)."""
    with transaction.atomic():
        record = node_heartbeat_record(
            node_id=node.pk, seq=seq, status=status, payload=payload, now=now, token_hash=token_hash
        )
        if record is None:
            raise TokenRefused
        if record.duplicate or record.seen_at is None:
            return record, ([], [], [])
        # the broker clock of the node's running leases (billing/services/metering.py, THE RULE), atomic with the
        # heartbeat: a clock left behind the node's previous heartbeat would stay stopped for good
        lease_clock_advance(node_id=node.pk, seen_at=record.seen_at, previous=record.previous)
        if not (leases or events or logs):
            return record, ([], [], [])
        return record, _apply_reports(node=node, leases=leases, now=now, events=events, logs=logs)


def _refusal_record(*, node: Node, refused: _Refused) -> None:
    """The heartbeat rolled back (nothing recorded, not even liveness); the refusal is flagged for staff."""
    usage_anomaly_record(
        kind=UsageAnomalyKind.REFUSED_REPORT,
        lease_ref=refused.lease_id,
        job_ref=refused.job_id,
        node_id=node.pk,
        provider_id=Node.objects.filter(pk=node.pk).values_list("provider__user_id", flat=True).get(),
        detail=refused.message,
    )
