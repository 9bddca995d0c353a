"""Uptime buckets, the rolling 30-day reliability score, and the offline sweep."""

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from marketplace.models import Node, NodeHeartbeat, NodeStatus, NodeUptime
from marketplace.services.reliability import (
    node_heartbeats_prune,
    node_reliability_compute,
    node_reliability_refresh,
    node_uptime_add,
    nodes_mark_offline,
    nodes_reliability_refresh,
    reliability_ratio,
    uptime_split,
)
from marketplace.signals import node_went_offline
from marketplace.tasks import nodes_mark_offline as nodes_mark_offline_task
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db


def at(hour: int, minute: int = 0, second: int = 0, day: int = 27) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def buckets(node: Node) -> dict[datetime, int]:
    return dict(NodeUptime.objects.filter(node=node).order_by("hour").values_list("hour", "up_seconds"))


def test_uptime_split_across_an_hour_boundary() -> None:
    assert uptime_split(start=at(9, 59, 50), end=at(10, 0, 5)) == [(at(9), 10), (at(10), 5)]
    assert uptime_split(start=at(9, 0, 0), end=at(9, 0, 0)) == []


def test_uptime_add_splits_a_heartbeat_gap_over_hour_buckets() -> None:
    node = NodeFactory()
    assert node_uptime_add(node_id=node.pk, previous=at(9, 59, 50), now=at(10, 0, 5)) == 15
    assert node_uptime_add(node_id=node.pk, previous=at(10, 0, 5), now=at(10, 0, 20)) == 15
    assert buckets(node) == {at(9): 10, at(10): 20}


def test_uptime_add_ignores_first_heartbeat_long_gaps_and_clock_going_back() -> None:
    node = NodeFactory()
    limit = settings.RIGSHIFT_NODE_OFFLINE_AFTER_S
    assert node_uptime_add(node_id=node.pk, previous=None, now=at(10)) == 0
    assert node_uptime_add(node_id=node.pk, previous=at(10), now=at(10) + timedelta(seconds=limit + 1)) == 0
    assert node_uptime_add(node_id=node.pk, previous=at(10, 5), now=at(10)) == 0
    assert buckets(node) == {}
    assert node_uptime_add(node_id=node.pk, previous=at(10), now=at(10) + timedelta(seconds=limit)) == limit


def test_many_fractional_gaps_add_up_exactly() -> None:
    node = NodeFactory()
    start = at(9, 59, 0) + timedelta(microseconds=300_000)
    beats = [start + timedelta(seconds=15.37 * i) for i in range(40)]
    for previous, now in itertools.pairwise(beats):
        node_uptime_add(node_id=node.pk, previous=previous, now=now)
    assert sum(buckets(node).values()) == int(beats[-1].timestamp()) - int(beats[0].timestamp())


def test_reliability_is_uptime_over_the_time_the_node_existed() -> None:
    now = at(12)
    node = NodeFactory()
    Node.objects.filter(pk=node.pk).update(created_at=now - timedelta(hours=24))
    node.refresh_from_db()
    for hour in range(12):  # up 12 of the 24 hours it has existed
        NodeUptime.objects.create(node_id=node.pk, hour=now - timedelta(hours=24 - hour), up_seconds=3600)
    assert node_reliability_compute(node=node, now=now) == pytest.approx(0.5)
    assert node_reliability_refresh(node=node, now=now) == pytest.approx(0.5)
    node.refresh_from_db()
    assert node.reliability == pytest.approx(0.5)


def test_reliability_window_is_the_last_30_days() -> None:
    now = at(12)
    node = NodeFactory()
    Node.objects.filter(pk=node.pk).update(created_at=now - timedelta(days=90))
    node.refresh_from_db()
    NodeUptime.objects.create(node_id=node.pk, hour=now - timedelta(days=40), up_seconds=3600)  # outside the window
    for day in range(15):  # 15 full days up within the last 30
        for hour in range(24):
            NodeUptime.objects.create(node_id=node.pk, hour=now - timedelta(days=day + 1, hours=-hour), up_seconds=3600)
    assert node_reliability_compute(node=node, now=now) == pytest.approx(0.5)


def test_reliability_ratio_edges() -> None:
    now = at(12)
    assert reliability_ratio(up_seconds=0, created_at=now, now=now) == 0.0
    assert reliability_ratio(up_seconds=10_000, created_at=now - timedelta(hours=1), now=now) == 1.0


def test_periodic_refresh_updates_every_node_in_one_pass(django_assert_max_num_queries: Any) -> None:
    now = timezone.now()
    up, down = NodeFactory(reliability=0.0), NodeFactory(reliability=0.99)
    Node.objects.filter(pk__in=[up.pk, down.pk]).update(created_at=now - timedelta(hours=10))
    NodeUptime.objects.create(node_id=up.pk, hour=now - timedelta(hours=5), up_seconds=3600 * 1)
    with django_assert_max_num_queries(4):
        assert nodes_reliability_refresh(now=now) == 2
    up.refresh_from_db()
    down.refresh_from_db()
    assert up.reliability == pytest.approx(0.1)
    assert down.reliability == 0.0


def test_mark_offline_marks_only_stale_online_nodes_and_signals_on_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    now = timezone.now()
    limit = settings.RIGSHIFT_NODE_OFFLINE_AFTER_S
    stale = NodeFactory(status=NodeStatus.ONLINE, last_heartbeat_at=now - timedelta(seconds=limit + 5))
    fresh = NodeFactory(status=NodeStatus.ONLINE, last_heartbeat_at=now - timedelta(seconds=5))
    never = NodeFactory(status=NodeStatus.REGISTERED, last_heartbeat_at=None)
    already = NodeFactory(status=NodeStatus.OFFLINE, last_heartbeat_at=now - timedelta(days=1))
    received: list[int] = []

    def on_offline(sender: Any, *, node_id: int, **kwargs: Any) -> None:
        received.append(node_id)

    node_went_offline.connect(on_offline)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert nodes_mark_offline(now=now) == [stale.pk]
        assert received == []  # nothing before commit
        for callback in callbacks:
            callback()
    finally:
        node_went_offline.disconnect(on_offline)
    assert received == [stale.pk]
    statuses = dict(Node.objects.values_list("pk", "status"))
    assert statuses[stale.pk] == NodeStatus.OFFLINE
    assert statuses[fresh.pk] == NodeStatus.ONLINE
    assert statuses[never.pk] == NodeStatus.REGISTERED
    assert statuses[already.pk] == NodeStatus.OFFLINE
    assert nodes_mark_offline(now=now) == []  # a second sweep finds nothing


def test_a_failing_receiver_does_not_stop_the_others(django_capture_on_commit_callbacks: Any) -> None:
    now = timezone.now()
    a = NodeFactory(last_heartbeat_at=now - timedelta(hours=1))
    b = NodeFactory(last_heartbeat_at=now - timedelta(hours=1))
    received: list[int] = []

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("failover bug")

    def on_offline(sender: Any, *, node_id: int, **kwargs: Any) -> None:
        received.append(node_id)

    node_went_offline.connect(broken)
    node_went_offline.connect(on_offline)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            nodes_mark_offline(now=now)
    finally:
        node_went_offline.disconnect(broken)
        node_went_offline.disconnect(on_offline)
    assert received == [a.pk, b.pk]


def test_online_node_that_never_heartbeated_goes_offline_once_old_enough() -> None:
    node = NodeFactory(status=NodeStatus.ONLINE, last_heartbeat_at=None)
    assert nodes_mark_offline(now=timezone.now()) == []
    Node.objects.filter(pk=node.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert nodes_mark_offline(now=timezone.now()) == [node.pk]


def test_offline_task_is_on_the_beat_schedule_and_runs(django_capture_on_commit_callbacks: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["marketplace-nodes-mark-offline"]
    assert entry["task"] == "marketplace.tasks.nodes_mark_offline"
    assert entry["schedule"] == 15.0
    assert settings.CELERY_BEAT_SCHEDULE["marketplace-nodes-reliability-refresh"]["task"] == (
        "marketplace.tasks.nodes_reliability_refresh"
    )
    node = NodeFactory(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        nodes_mark_offline_task.delay()
    node.refresh_from_db()
    assert node.status == NodeStatus.OFFLINE


def test_heartbeat_rows_are_pruned_after_retention() -> None:
    node = NodeFactory()
    now = timezone.now()
    old = [NodeHeartbeat.objects.create(node_id=node.pk, seq=seq) for seq in range(3)]
    NodeHeartbeat.objects.filter(pk__in=[beat.pk for beat in old]).update(received_at=now - timedelta(days=8))
    recent = NodeHeartbeat.objects.create(node_id=node.pk, seq=10)
    assert node_heartbeats_prune(now=now, batch_size=2) == 3
    assert list(NodeHeartbeat.objects.values_list("pk", flat=True)) == [recent.pk]
    assert settings.CELERY_BEAT_SCHEDULE["marketplace-node-heartbeats-prune"]["task"] == (
        "marketplace.tasks.node_heartbeats_prune"
    )
