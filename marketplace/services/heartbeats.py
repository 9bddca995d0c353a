"""Recording a node's heartbeat: the row keyed by (node, seq), the node online, its uptime, its reliability.

`node_heartbeat_record` does, for heartbeat `seq` of a node, exactly once:

* insert the `NodeHeartbeat` row (a repeated `seq` inserts nothing and changes nothing else: a duplicate);
* mark the node online with `last_heartbeat_at = max(previous, now)` (never moves backwards), under the node's
  row lock, so concurrent heartbeats of one node are ordered;
* credit the gap since the previous heartbeat to the hourly uptime buckets (rules in `reliability.py`);
* recompute the node's stored reliability when this heartbeat crosses a minute boundary (so at most once a
  minute per node, and at least once a minute while it heartbeats; the beat task refreshes every node too);
* say whether a compute challenge waits for the agent, and, on a duplicate, the highest seq received.

When `token_hash` is given (the agent API, whose authentication may come from a cache), the node row must
still carry that hash and an unrevoked token, checked under the same lock before anything is written;
otherwise nothing is written and None is returned (the caller answers 401).

On PostgreSQL all of that is ONE statement (one round trip): a locking read of the node, the heartbeat
`INSERT … ON CONFLICT DO NOTHING`, the uptime upsert, and the node `UPDATE … RETURNING`, chained by CTEs so each
write happens only when the heartbeat row was new. SQLite runs the same steps as separate queries in one
transaction.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from marketplace.models import ChallengeState, Node, NodeChallenge, NodeHeartbeat, NodeStatus, NodeUptime
from marketplace.services.reliability import (
    HOUR_S,
    RELIABILITY_WINDOW,
    node_reliability_refresh,
    node_uptime_add,
)

RELIABILITY_REFRESH_S = 60  # reliability is recomputed when a heartbeat crosses a boundary of this many seconds
_WAITING = (ChallengeState.PENDING.value, ChallengeState.DELIVERED.value)


@dataclass(frozen=True)
class HeartbeatRecord:
    node_id: int
    duplicate: bool
    previous: datetime | None  # last_heartbeat_at before this heartbeat
    seen_at: datetime | None  # last_heartbeat_at after it (None on a duplicate)
    uptime_added_s: int
    reliability_refreshed: bool
    challenge_pending: bool
    max_seq: int | None  # on a duplicate: the highest seq received from the node


def refresh_due(*, previous: datetime | None, seen_at: datetime) -> bool:
    """Whether the move from `previous` to `seen_at` crosses a `RELIABILITY_REFRESH_S` boundary."""
    if previous is None:
        return True
    step = RELIABILITY_REFRESH_S
    return int(previous.timestamp()) // step != int(seen_at.timestamp()) // step


def node_heartbeat_record(
    *,
    node_id: int,
    seq: int,
    status: str = "ok",
    payload: dict[str, object] | None = None,
    now: datetime | None = None,
    token_hash: str | None = None,
) -> HeartbeatRecord | None:
    """Record heartbeat `seq` of node `node_id` once (see the module). None: the token no longer opens the node."""
    now = now or timezone.now()
    body = json.dumps(payload or {}, cls=DjangoJSONEncoder)
    if connection.vendor == "postgresql":
        return _record_postgres(node_id=node_id, seq=seq, status=status[:20], body=body, now=now, token=token_hash)
    return _record_portable(
        node_id=node_id, seq=seq, status=status[:20], payload=json.loads(body), now=now, token=token_hash
    )


_SQL = """
WITH node AS (
    SELECT id, last_heartbeat_at, created_at FROM {node}
    WHERE id = %(node)s {token_check}
    FOR UPDATE
), hb AS (
    INSERT INTO {heartbeat} (node_id, seq, received_at, status, payload)
    SELECT id, %(seq)s, %(now)s, %(status)s, %(payload)s::jsonb FROM node
    ON CONFLICT (node_id, seq) DO NOTHING
    RETURNING node_id
), gap AS (
    SELECT node.id, floor(extract(epoch FROM node.last_heartbeat_at))::bigint AS first,
           floor(extract(epoch FROM %(now)s::timestamptz))::bigint AS last
    FROM node, hb
    WHERE node.last_heartbeat_at IS NOT NULL AND %(now)s::timestamptz > node.last_heartbeat_at
      AND extract(epoch FROM %(now)s::timestamptz - node.last_heartbeat_at) <= %(offline_s)s
), parts AS (
    SELECT gap.id AS node_id, to_timestamp(h) AS hour, LEAST(h + {hour_s}, gap.last) - GREATEST(h, gap.first) AS up
    FROM gap, generate_series(gap.first - mod(gap.first, {hour_s}), gap.last - 1, {hour_s}) AS h
), uptime AS (
    INSERT INTO {uptime} (node_id, hour, up_seconds)
    SELECT node_id, hour, up FROM parts
    ON CONFLICT (node_id, hour) DO UPDATE SET up_seconds = {uptime}.up_seconds + EXCLUDED.up_seconds
), win AS (
    SELECT start, to_timestamp(floor(extract(epoch FROM start) / {hour_s}) * {hour_s}) AS hour_start
    FROM (SELECT GREATEST(%(now)s::timestamptz - make_interval(days => %(window_days)s), node.created_at) AS start
          FROM node) w
), due AS (
    SELECT node.last_heartbeat_at IS NULL
        OR floor(extract(epoch FROM node.last_heartbeat_at))::bigint / %(step)s
           <> floor(extract(epoch FROM GREATEST(node.last_heartbeat_at, %(now)s::timestamptz)))::bigint / %(step)s
        AS refresh
    FROM node
), upd AS (
    UPDATE {node} n
    SET status = %(online)s,
        last_heartbeat_at = GREATEST(node.last_heartbeat_at, %(now)s::timestamptz),
        reliability = CASE WHEN NOT (SELECT refresh FROM due) THEN n.reliability
            WHEN extract(epoch FROM %(now)s::timestamptz - (SELECT start FROM win)) < 1 THEN 0.0
            ELSE LEAST(1.0, GREATEST(0.0, (
                COALESCE((SELECT sum(u.up_seconds) FROM {uptime} u, win
                          WHERE u.node_id = n.id AND u.hour <= %(now)s::timestamptz
                            AND u.hour >= win.hour_start), 0)
                + COALESCE((SELECT sum(p.up) FROM parts p, win
                            WHERE p.hour <= %(now)s::timestamptz
                              AND p.hour >= win.hour_start), 0)
            )::float8 / extract(epoch FROM %(now)s::timestamptz - (SELECT start FROM win))::float8))
        END
    FROM node, hb
    WHERE n.id = node.id
    RETURNING n.last_heartbeat_at
)
SELECT
    (SELECT count(*) FROM node),
    (SELECT count(*) FROM hb),
    (SELECT last_heartbeat_at FROM node),
    (SELECT last_heartbeat_at FROM upd),
    (SELECT COALESCE(sum(up), 0) FROM parts),
    (SELECT refresh FROM due),
    EXISTS (SELECT 1 FROM {challenge} c WHERE c.node_id = %(node)s AND c.state IN (%(waiting_a)s, %(waiting_b)s)),
    CASE WHEN (SELECT count(*) FROM hb) = 0
        THEN (SELECT max(seq) FROM {heartbeat} WHERE node_id = %(node)s) END
"""


def _sql(*, check_token: bool) -> str:
    return _SQL.format(
        node=Node._meta.db_table,
        heartbeat=NodeHeartbeat._meta.db_table,
        uptime=NodeUptime._meta.db_table,
        challenge=NodeChallenge._meta.db_table,
        hour_s=HOUR_S,
        token_check="AND token_hash = %(token)s AND token_revoked_at IS NULL" if check_token else "",
    )


_SQL_CHECKED = _sql(check_token=True)
_SQL_UNCHECKED = _sql(check_token=False)


def _record_postgres(
    *, node_id: int, seq: int, status: str, body: str, now: datetime, token: str | None
) -> HeartbeatRecord | None:
    params = {
        "node": node_id,
        "token": token,
        "seq": seq,
        "now": now,
        "status": status,
        "payload": body,
        "offline_s": settings.RIGSHIFT_NODE_OFFLINE_AFTER_S,
        "window_days": RELIABILITY_WINDOW.days,
        "step": RELIABILITY_REFRESH_S,
        "online": NodeStatus.ONLINE.value,
        "waiting_a": _WAITING[0],
        "waiting_b": _WAITING[1],
    }
    with connection.cursor() as cursor:
        cursor.execute(_SQL_CHECKED if token is not None else _SQL_UNCHECKED, params)
        found, inserted, previous, seen_at, added, due, challenge, max_seq = cursor.fetchone()
    if not found:
        return None
    return HeartbeatRecord(
        node_id=node_id,
        duplicate=not inserted,
        previous=previous,
        seen_at=seen_at,
        uptime_added_s=int(added),
        reliability_refreshed=bool(inserted and due),
        challenge_pending=bool(challenge),
        max_seq=max_seq,
    )


def _record_portable(
    *, node_id: int, seq: int, status: str, payload: dict[str, object], now: datetime, token: str | None
) -> HeartbeatRecord | None:
    """SQLite: writers are serialised (BEGIN IMMEDIATE), so the duplicate check under the lock is exact."""
    with transaction.atomic(savepoint=False):
        nodes = Node.objects.select_for_update().filter(pk=node_id)
        if token is not None:
            nodes = nodes.filter(token_hash=token, token_revoked_at__isnull=True)
        seen = NodeHeartbeat.objects.filter(node_id=OuterRef("pk"), seq=seq)
        row = nodes.annotate(seen=Exists(seen)).values_list("last_heartbeat_at", "created_at", "seen").first()
        if row is None:
            return None
        previous, created_at, duplicate = row
        if duplicate:
            top = NodeHeartbeat.objects.filter(node_id=node_id).aggregate(top=Max("seq"))["top"]
            return HeartbeatRecord(node_id, True, previous, None, 0, False, _challenge_pending(node_id), top)
        NodeHeartbeat.objects.create(node_id=node_id, seq=seq, status=status, payload=payload)
        seen_at = max(previous, now) if previous is not None else now
        Node.objects.filter(pk=node_id).update(status=NodeStatus.ONLINE, last_heartbeat_at=seen_at)
        added = node_uptime_add(node_id=node_id, previous=previous, now=now)
        due = refresh_due(previous=previous, seen_at=seen_at)
        if due:
            node_reliability_refresh(node=Node(pk=node_id, created_at=created_at), now=now)
    return HeartbeatRecord(node_id, False, previous, seen_at, added, due, _challenge_pending(node_id), None)


def _challenge_pending(node_id: int) -> bool:
    return NodeChallenge.objects.filter(node_id=node_id, state__in=_WAITING).exists()
