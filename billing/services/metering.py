"""Metering: the broker's own clock is the meter; heartbeat usage reports are evidence, recorded exactly once.

THE RULE (issue 12; docs/architecture.md "Metering"). A lease is billed for the time the broker itself observed it
running, × its GPUs, at the lease price:

    billed GPU-ms ≤ observed GPU-ms = gpu_count × (seen_until − active_from)

  * `active_from`: activation, when the broker received the first report of the lease running (never before the
    lease's scheduled start);
  * `seen_until`: the broker clock (`LeaseAccount.seen_until`), advanced by `lease_clock_advance` on every heartbeat
    of the lease's node to the heartbeat's receipt time, and never past the earliest of the agent's exit report, the
    lease's scheduled end, cancellation, preemption or failure (`lease_settle_final(ended_at=…)`): a node that goes
    silent (no heartbeat for longer than the offline threshold) stops the clock at its last heartbeat for good.

The agent's usage reports may only SHORTEN that time, never lengthen it: the billed GPU-ms of a lease are
min(GPU-ms its accepted reports claim, observed GPU-ms), cumulative, so repeated or late reports never bill twice
and a lagging clock catches up on the next settlement. Reports whose interval lies outside the lease's active window,
ends in the future, or is longer than a few heartbeats are refused by the agent API with a 400 naming the reason
(`report_window_problem`); a refused report is kept as a `UsageAnomaly` for staff. Storage and egress are bounded the
same way per lease: storage GB-ms ≤ the listing's disk × observed wall time, egress bytes ≤ the listing's upload
bandwidth × observed wall time (`storage_gb_cap`, `egress_bytes_per_s_cap`). On top of that, the job's escrow hold
bounds what all the job's leases together are charged (services.settlement): usage beyond it is capped and flagged.

Ingestion: each report is keyed by (node, lease, seq): the batch is written with ONE multi-row `INSERT ... ON CONFLICT
DO NOTHING RETURNING`, so a duplicate, a retry or an out-of-order delivery neither double-counts nor loses
usage, and the returned rows tell exactly which reports were new.

Usage for a lease billing has no account for yet (the broker opens it when it activates the lease) is
kept as pending and rated as soon as the account appears; usage reported by a node other than the
lease's node, or arriving after the lease closed, is kept but excluded from charging with its
reason (see services.settlement). Nothing reported is ever silently dropped.
"""

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.models import LeaseAccount, LeaseAccountStatus, UsageAnomaly, UsageAnomalyKind, UsageRecord, UsageStatus
from common.errors import ValidationFailed

MAX_REPORTS = 5000
# How far an agent's clock may run ahead of the broker's before a report counts as "in the future".
AGENT_CLOCK_SKEW_S = 10
# A report covers one heartbeat interval; one reaching back more than this many intervals (and at least
# MIN_REPORT_REACH_S, so a node back from a short network outage is not refused) is refused.
MAX_REPORT_INTERVALS = 4
MIN_REPORT_REACH_S = 120
# Egress bound for a listing that does not state its upload bandwidth: a 10 Gbit/s link.
DEFAULT_EGRESS_BYTES_PER_S = 10_000 * 125_000
# One report covers one heartbeat interval; a day of 64 GPUs is far beyond any real interval.
MAX_GPU_SECONDS = 64 * 86_400
# Storage held by one lease (GB) and bytes it sent in one interval: generous bounds that keep sums in a bigint.
MAX_STORAGE_GB = 1_000_000
MAX_EGRESS_BYTES = 10**15
_COLUMNS = (
    "node_id",
    "lease_ref",
    "seq",
    "gpu_ms",
    "storage_gb_ms",
    "egress_bytes",
    "utilisation",
    "interval_start",
    "interval_end",
    "state",
    "status",
    "exclusion_reason",
    "received_at",
)
_ROWS_PER_STATEMENT = 500


def _int(report: dict[str, Any], name: str, index: int) -> int:
    value = report.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationFailed(f"report {index}: {name} must be an integer", details={"index": index, "field": name})
    try:
        number = int(value)
    except ValueError as exc:
        raise ValidationFailed(f"report {index}: {name} must be an integer", details={"index": index}) from exc
    if number < 0 or number > 2**62:
        raise ValidationFailed(f"report {index}: {name} is out of range", details={"index": index, "field": name})
    return number


def _gpu_ms(report: dict[str, Any], index: int) -> int:
    value = report.get("gpu_seconds")
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(f"report {index}: gpu_seconds is required", details={"index": index})
    try:
        seconds = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationFailed(f"report {index}: gpu_seconds must be a number", details={"index": index}) from exc
    if not seconds.is_finite() or seconds < 0 or seconds > MAX_GPU_SECONDS:
        raise ValidationFailed(
            f"report {index}: gpu_seconds must be between 0 and {MAX_GPU_SECONDS}", details={"index": index}
        )
    return int(seconds * 1000)


def _storage_gb_ms(report: dict[str, Any], index: int, start: datetime | None, end: datetime | None) -> int:
    """GB-milliseconds of storage: `storage_gb` (held during the interval) × the interval's length."""
    value = report.get("storage_gb")
    if value in (None, 0, "0"):
        return 0
    if isinstance(value, bool):
        raise ValidationFailed(f"report {index}: storage_gb must be a number", details={"index": index})
    try:
        gb = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationFailed(f"report {index}: storage_gb must be a number", details={"index": index}) from exc
    if not gb.is_finite() or gb < 0 or gb > MAX_STORAGE_GB:
        raise ValidationFailed(
            f"report {index}: storage_gb must be between 0 and {MAX_STORAGE_GB}", details={"index": index}
        )
    if gb == 0:
        return 0
    if start is None or end is None:
        raise ValidationFailed(
            f"report {index}: storage_gb needs interval_start and interval_end", details={"index": index}
        )
    interval_ms = int((end - start).total_seconds() * 1000)
    if interval_ms > MAX_GPU_SECONDS * 1000:
        raise ValidationFailed(f"report {index}: the interval is too long to meter storage", details={"index": index})
    return int(gb * interval_ms)


def _egress_bytes(report: dict[str, Any], index: int) -> int:
    if report.get("egress_bytes") in (None, ""):
        return 0
    number = _int(report, "egress_bytes", index)
    if number > MAX_EGRESS_BYTES:
        raise ValidationFailed(f"report {index}: egress_bytes is out of range", details={"index": index})
    return number


def _when(report: dict[str, Any], name: str, index: int) -> datetime | None:
    value = report.get(name)
    if value in (None, ""):
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is None:
        raise ValidationFailed(f"report {index}: {name} is not an ISO 8601 time", details={"index": index})
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _utilisation(report: dict[str, Any], index: int) -> float | None:
    value = report.get("utilisation")
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"report {index}: utilisation must be a number", details={"index": index}) from exc
    if not math.isfinite(number) or not 0 <= number <= 1.0001:
        raise ValidationFailed(f"report {index}: utilisation must be between 0 and 1", details={"index": index})
    return number


def _rows(*, node_id: int, reports: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    now = timezone.now()
    rows = []
    for index, report in enumerate(reports):
        if not isinstance(report, dict):
            raise ValidationFailed(f"report {index} must be an object", details={"index": index})
        start, end = _when(report, "interval_start", index), _when(report, "interval_end", index)
        if start and end and end < start:
            raise ValidationFailed(f"report {index}: interval_end is before interval_start", details={"index": index})
        state = str(report.get("state") or "")[:20]
        rows.append(
            (
                node_id,
                _int(report, "lease_id", index),
                _int(report, "seq", index),
                _gpu_ms(report, index),
                _storage_gb_ms(report, index, start, end),
                _egress_bytes(report, index),
                _utilisation(report, index),
                start,
                end,
                state,
                UsageStatus.PENDING.value,
                "",
                now,
            )
        )
    return rows


def usage_ingest(*, node_id: int, reports: Sequence[dict[str, Any]]) -> int:
    """Record each report ({lease_id, seq, gpu_seconds, utilisation, interval_start, interval_end, state,
    optional storage_gb and egress_bytes}) once, keyed by (node, lease, seq). Returns how many were new.

    The whole batch is validated first (a bad report is a ValidationFailed naming it, and nothing is
    written), then inserted with conflict-ignore in one statement per 500 rows.
    """
    if len(reports) > MAX_REPORTS:
        raise ValidationFailed(f"at most {MAX_REPORTS} usage reports per call")
    rows = _rows(node_id=node_id, reports=reports)
    if not rows:
        return 0
    return _insert_ignoring_duplicates(rows)


_PG_TYPES = (
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "double precision",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
    "timestamptz",
)


_PG_VARYING = 10  # node_id … state; then status, exclusion_reason, received_at


def _insert_ignoring_duplicates(rows: Sequence[tuple[Any, ...]]) -> int:
    """INSERT ... ON CONFLICT (node_id, lease_ref, seq) DO NOTHING; returns how many rows were new.

    PostgreSQL gets one statement per batch with one array parameter per column (`unnest`), which
    parses and plans far faster than thousands of scalar placeholders; other databases get multi-row
    VALUES with RETURNING, 500 rows per statement.
    """
    table = connection.ops.quote_name(UsageRecord._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    conflict = "ON CONFLICT (node_id, lease_ref, seq) DO NOTHING"
    new = 0
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The per-report columns travel as arrays; status, reason and receipt time are constants.
            arrays = [list(column) for column in zip(*rows, strict=True)][:_PG_VARYING]
            select = ", ".join(f"%s::{t}[]" for t in _PG_TYPES[:_PG_VARYING])
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT *, %s, '', now() FROM unnest({select}) {conflict}",  # noqa: S608
                [UsageStatus.PENDING.value, *arrays],
            )
            return int(cursor.rowcount)
        placeholder = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            params: list[Any] = []
            for row in chunk:
                params.extend(
                    connection.ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v for v in row
                )
            values = ", ".join([placeholder] * len(chunk))
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {values} {conflict} RETURNING id", params)  # noqa: S608
            new += len(cursor.fetchall())
    return new


# --- THE RULE: the broker clock -----------------------------------------------------------------------------------


def lease_clock_advance(*, node_id: int, seen_at: datetime, previous: datetime | None) -> int:
    """The node's heartbeat at `seen_at` (its previous one at `previous`): move the clock of each open, activated
    lease account of the node to it, capped at the lease's scheduled end, never backwards. One UPDATE; returns how
    many accounts moved.

    A node that was silent for longer than the offline threshold (RIGSHIFT_NODE_OFFLINE_AFTER_S) stopped its leases'
    clocks at its last heartbeat: this heartbeat does not bill the silence, and a clock that is behind the node's
    previous heartbeat stays stopped for good (the offline sweep fails such leases).
    """
    offline_after = timedelta(seconds=int(getattr(settings, "RIGSHIFT_NODE_OFFLINE_AFTER_S", 60)))
    if previous is None or seen_at - previous > offline_after:
        return 0
    capped = Case(
        When(Q(period_end__isnull=False) & Q(period_end__lt=seen_at), then=F("period_end")),
        default=seen_at,
    )
    return LeaseAccount.objects.filter(
        node_id=node_id,
        status=LeaseAccountStatus.OPEN,
        active_from__isnull=False,
        active_from__lte=seen_at,
        seen_until__gte=previous,
        seen_until__lt=seen_at,
    ).update(seen_until=capped)


def lease_clock_replay(*, lease_ref: int, until: datetime) -> int:
    """History replay only (broker/services/replay.py writes months of simulated market history in a few calls): the
    broker is taken to have seen the lease's node heartbeat up to `until`, as `lease_clock_advance` would have on
    each heartbeat. Never called on an agent's word."""
    return LeaseAccount.objects.filter(lease_ref=lease_ref, status=LeaseAccountStatus.OPEN).update(seen_until=until)


def observed_wall_ms(*, account: LeaseAccount) -> int:
    """Milliseconds the broker observed the lease running: active_from → min(seen_until, period_end)."""
    if account.active_from is None or account.seen_until is None:
        return 0
    until = account.seen_until if account.period_end is None else min(account.seen_until, account.period_end)
    return max(0, int((until - account.active_from).total_seconds() * 1000))


def observed_gpu_ms(*, account: LeaseAccount) -> int:
    """THE RULE's bound: GPU-ms the broker observed (its GPUs × observed wall time)."""
    return account.gpu_count * observed_wall_ms(account=account)


def report_window_problem(
    *,
    start: datetime,
    end: datetime,
    lease_starts_at: datetime,
    lease_ends_at: datetime,
    activated_at: datetime | None,
    now: datetime,
    heartbeat_interval_s: int,
) -> str:
    """'' when a report's interval [start, end] could have been observed running, else the reason it is refused.

    The window is the lease's period (scheduled start to scheduled end), never in the future, reaching back no
    more than MAX_REPORT_INTERVALS heartbeats before activation (the first report covers the interval before it).
    A report of a lease the broker already closed is not refused (the agent learns of the close a heartbeat
    later): it is kept and excluded from charging, since the broker clock stopped at the close.
    """
    skew = timedelta(seconds=AGENT_CLOCK_SKEW_S)
    reach_s = max(MAX_REPORT_INTERVALS * heartbeat_interval_s, MIN_REPORT_REACH_S)
    reach = timedelta(seconds=reach_s)
    if end > now + skew:
        return f"interval_end {end.isoformat()} is in the future (broker time {now.isoformat()})"
    if end - start > reach:
        return f"the interval is {(end - start).total_seconds():g} s long; a report covers at most {reach_s} s"
    if start < lease_starts_at - skew:
        return f"interval_start {start.isoformat()} is before the lease's start {lease_starts_at.isoformat()}"
    if end > lease_ends_at + skew:
        return f"interval_end {end.isoformat()} is after the lease's end {lease_ends_at.isoformat()}"
    earliest = (activated_at or now) - reach
    if start < earliest:
        return f"interval_start {start.isoformat()} is before the lease was seen running"
    return ""


def usage_anomaly_record(
    *,
    kind: str,
    lease_ref: int,
    detail: str,
    node_id: int | None = None,
    job_ref: int | None = None,
    provider_id: int | None = None,
    customer_id: int | None = None,
    claimed_micros: int = 0,
    charged_micros: int = 0,
) -> UsageAnomaly:
    """Flag usage the broker refused or capped, for staff (console flags page) and underwriting."""
    if kind not in UsageAnomalyKind.values:
        raise ValueError(f"unknown anomaly kind {kind!r}")
    return UsageAnomaly.objects.create(
        kind=kind,
        lease_ref=lease_ref,
        job_ref=job_ref,
        node_id=node_id,
        provider_id=provider_id,
        customer_id=customer_id,
        claimed_micros=claimed_micros,
        charged_micros=charged_micros,
        detail=detail[:500],
    )
