"""Node liveness and reliability: uptime buckets from heartbeats, the rolling 30-day score, offline sweep.

Reliability is uptime over a rolling 30-day window::

    reliability = sum(up_seconds of the node's hourly buckets in the window) / seconds the node existed in it

where the window is `min(30 days, now - node.created_at)`. Uptime is added per heartbeat as the gap
since the previous heartbeat, but only when that gap is at most `RIGSHIFT_NODE_OFFLINE_AFTER_S`
(a longer silence is downtime). Gaps are measured between whole Unix seconds, so the sum of many
15-second gaps is exact (no rounding drift) and heartbeating faster never earns more uptime.

This module is the one place reliability is computed (stored in `Node.reliability`, refreshed by heartbeats at
most once a minute per node and by the beat task every 5 minutes) and the one place it is formatted:

* the API gives it as a number, `reliability_public`: the ratio from 0 to 1 rounded to 4 places
  (0.9622 = up 96.22 % of the window) — `RELIABILITY_MEANING` documents it in the OpenAPI schema;
* pages and the CLI show that number as a percentage with one decimal, `reliability_percent` ("96.2%"),
  through the `reliability` template filter (and the CLI's checked copy, rigshift_client.display);
* a node whose agent has never reported has no reliability yet (`node_reliability_value` gives None, shown
  as "—"), rather than a misleading 0.0 %.
"""

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from marketplace.models import Node, NodeHeartbeat, NodeStatus, NodeUptime
from marketplace.signals import node_went_offline
from notify.models import EventKind
from notify.services.events import notify_event, users_listening

logger = logging.getLogger(__name__)

RELIABILITY_WINDOW = timedelta(days=30)
# Heartbeat rows are kept this long (for support and seq de-duplication); uptime lives in the hourly buckets.
HEARTBEAT_RETENTION = timedelta(days=7)
HOUR_S = 3600
RELIABILITY_PLACES = 4
RELIABILITY_MEANING = (
    "Reliability: the share of time the node was up over the last 30 days (or since it was registered, when "
    "younger), from heartbeats; a ratio from 0 to 1 rounded to 4 places (0.9622 = up 96.22% of the time). "
    "Pages and the CLI show it as a percentage with one decimal."
)


def reliability_public(value: float | None) -> float | None:
    """The API's reliability: the ratio clamped to 0–1 and rounded to `RELIABILITY_PLACES` (None stays None)."""
    if value is None:
        return None
    return round(max(0.0, min(1.0, float(value))), RELIABILITY_PLACES)


def reliability_percent(value: object) -> str:
    """Reliability for people: the API's number as a percentage with one decimal ("96.2%"); "—" for none.

    Accepts the ratio or a node (then a node whose agent never reported shows "—").
    """
    if isinstance(value, Node):
        value = node_reliability_value(value)
    if value is None or value == "":
        return "—"
    public = reliability_public(float(value))  # type: ignore[arg-type]
    percent = (Decimal(str(public)) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{percent}%"


def node_reliability_value(node: Node) -> float | None:
    """The node's stored reliability, or None while its agent has never reported (nothing measured yet)."""
    if node.agent_registered_at is None and node.last_heartbeat_at is None:
        return None
    return reliability_public(node.reliability)


def hour_floor(at: datetime) -> datetime:
    """The start of the UTC hour containing `at` (the key of its uptime bucket)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def uptime_split(*, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """Split the whole seconds between `start` and `end` into (hour bucket, seconds) pairs.

    Both ends are floored to whole Unix seconds, so consecutive splits telescope exactly.
    """
    first = int(start.timestamp())
    last = int(end.timestamp())
    parts: list[tuple[datetime, int]] = []
    cursor = first
    while cursor < last:
        bucket_start = cursor - cursor % HOUR_S
        bucket_end = min(bucket_start + HOUR_S, last)
        parts.append((datetime.fromtimestamp(bucket_start, tz=UTC), bucket_end - cursor))
        cursor = bucket_end
    return parts


def node_uptime_add(*, node_id: int, previous: datetime | None, now: datetime) -> int:
    """Credit the node with the time since its previous heartbeat, split over hour buckets.

    Nothing is added for the first heartbeat, for a gap longer than `RIGSHIFT_NODE_OFFLINE_AFTER_S`
    or for a clock that went backwards. Callers hold the node row lock (see the agent heartbeat
    service), so buckets are updated without races. Returns the seconds added.
    """
    if previous is None or now <= previous:
        return 0
    if (now - previous).total_seconds() > settings.RIGSHIFT_NODE_OFFLINE_AFTER_S:
        return 0
    added = 0
    splits = list(uptime_split(start=previous, end=now))
    if len(splits) > 2:  # a long gap (simulated time with coarse ticks): the new buckets in one insert
        hours = [hour for hour, _ in splits]
        existing = set(
            NodeUptime.objects.filter(node_id=node_id, hour__gte=hours[0], hour__lte=hours[-1]).values_list(
                "hour", flat=True
            )
        )
        new = [NodeUptime(node_id=node_id, hour=h, up_seconds=s) for h, s in splits if h not in existing]
        NodeUptime.objects.bulk_create(new)
        added += sum(row.up_seconds for row in new)
        splits = [(hour, seconds) for hour, seconds in splits if hour in existing]
    for hour, seconds in splits:
        updated = NodeUptime.objects.filter(node_id=node_id, hour=hour).update(up_seconds=F("up_seconds") + seconds)
        if not updated:
            NodeUptime.objects.create(node_id=node_id, hour=hour, up_seconds=seconds)
        added += seconds
    return added


def _window(*, created_at: datetime, now: datetime) -> tuple[datetime, float]:
    start = max(now - RELIABILITY_WINDOW, created_at)
    return start, max((now - start).total_seconds(), 0.0)


def reliability_ratio(*, up_seconds: int, created_at: datetime, now: datetime) -> float:
    """Uptime share of the window the node existed in, clamped to 0–1 (0 for a node just created)."""
    _, existed = _window(created_at=created_at, now=now)
    if existed < 1:
        return 0.0
    return max(0.0, min(1.0, up_seconds / existed))


def node_reliability_compute(*, node: Node, now: datetime | None = None) -> float:
    """The node's reliability now, from its uptime buckets (one aggregate query)."""
    now = now or timezone.now()
    start, _ = _window(created_at=node.created_at, now=now)
    up = NodeUptime.objects.filter(node_id=node.pk, hour__gte=hour_floor(start), hour__lte=now).aggregate(
        total=Sum("up_seconds")
    )["total"]
    return reliability_ratio(up_seconds=up or 0, created_at=node.created_at, now=now)


def node_reliability_refresh(*, node: Node, now: datetime | None = None) -> float:
    """Recompute and store `Node.reliability` for one node."""
    value = node_reliability_compute(node=node, now=now)
    Node.objects.filter(pk=node.pk).update(reliability=value)
    node.reliability = value
    return value


def nodes_reliability_refresh(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Recompute `Node.reliability` for every node (the periodic task). Returns how many changed.

    One grouped aggregate over the window's buckets, then updates only where the value moved.
    """
    now = now or timezone.now()
    totals = dict(
        NodeUptime.objects.filter(hour__gte=hour_floor(now - RELIABILITY_WINDOW), hour__lte=now)
        .values_list("node_id")
        .annotate(total=Sum("up_seconds"))
        .values_list("node_id", "total")
    )
    changed: list[Node] = []
    for node in Node.objects.only("id", "created_at", "reliability").iterator(chunk_size=batch_size):
        value = reliability_ratio(up_seconds=totals.get(node.pk) or 0, created_at=node.created_at, now=now)
        if abs(value - node.reliability) > 1e-9:
            node.reliability = value
            changed.append(node)
    for offset in range(0, len(changed), batch_size):
        Node.objects.bulk_update(changed[offset : offset + batch_size], ["reliability"])
    return len(changed)


def _send_offline(node_ids: Iterable[int]) -> None:
    for node_id in node_ids:
        for receiver, result in node_went_offline.send_robust(sender=Node, node_id=node_id):
            if isinstance(result, Exception):
                logger.error(
                    "node_went_offline receiver %r failed for node %s",
                    receiver,
                    node_id,
                    exc_info=(type(result), result, result.__traceback__),
                )


def _notify_offline(*, node_ids: list[int], now: datetime) -> None:
    """Tell each node's provider (webhook/e-mail, after commit) once per offline event (key: node and time)."""
    nodes = list(Node.objects.filter(pk__in=node_ids).select_related("provider__user"))
    listening = users_listening(user_ids={n.provider.user_id for n in nodes})
    for node in nodes:
        if node.provider.user_id not in listening:
            continue
        notify_event(
            user=node.provider.user,
            kind=EventKind.NODE_OFFLINE,
            key=f"node-offline:{node.pk}:{now.isoformat()}",
            subject=f"Node {node.name} went offline",
            payload={"node_id": node.pk, "node": node.name, "offline_at": now.isoformat()},
        )


def nodes_mark_offline(*, now: datetime | None = None) -> list[int]:
    """Mark online nodes whose last heartbeat is older than `RIGSHIFT_NODE_OFFLINE_AFTER_S` offline.

    Rows being written by a concurrent heartbeat are skipped (that node is alive). After commit,
    `marketplace.signals.node_went_offline(node_id=…)` is sent once per node marked, for failover.
    A node online with no heartbeat at all counts from its creation. Returns the ids marked.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.RIGSHIFT_NODE_OFFLINE_AFTER_S)
    stale = Q(status=NodeStatus.ONLINE) & (
        Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
    with transaction.atomic():
        ids = list(
            Node.objects.select_for_update(skip_locked=True).filter(stale).order_by("pk").values_list("pk", flat=True)
        )
        if not ids:
            return []
        Node.objects.filter(stale, pk__in=ids).update(status=NodeStatus.OFFLINE, updated_at=now)
        _notify_offline(node_ids=ids, now=now)
        transaction.on_commit(partial(_send_offline, ids))
    logger.info("marked %d node(s) offline: %s", len(ids), ids[:20])
    return ids


def node_heartbeats_prune(*, now: datetime | None = None, batch_size: int = 10_000) -> int:
    """Delete heartbeat rows older than `HEARTBEAT_RETENTION` in batches. Returns how many were deleted.

    Safe for idempotency: uptime is telescoping (a replayed old seq adds no extra uptime overall) and
    billing de-duplicates usage by its own (node, lease, seq) key.
    """
    cutoff = (now or timezone.now()) - HEARTBEAT_RETENTION
    deleted = 0
    while True:
        ids = list(
            NodeHeartbeat.objects.filter(received_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += NodeHeartbeat.objects.filter(pk__in=ids).delete()[0]
