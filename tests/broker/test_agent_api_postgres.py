"""Concurrent heartbeats on PostgreSQL: a sequence number counts once, uptime is never double-counted."""

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from broker.services.agent import HeartbeatResult, agent_heartbeat
from marketplace.models import Node, NodeHeartbeat, NodeUptime
from tests.factories import NodeFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]


def run_together(calls: list[Callable[[], HeartbeatResult]]) -> list[HeartbeatResult | BaseException]:
    barrier = threading.Barrier(len(calls))
    results: list[HeartbeatResult | BaseException] = [RuntimeError("not run")] * len(calls)

    def worker(index: int) -> None:
        try:
            barrier.wait()
            results[index] = calls[index]()
        except BaseException as exc:  # noqa: BLE001 — reported to the test
            results[index] = exc
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_the_same_seq_sent_concurrently_is_applied_once(monkeypatch: pytest.MonkeyPatch) -> None:
    node = NodeFactory()
    base = timezone.now()
    Node.objects.filter(pk=node.pk).update(last_heartbeat_at=base - timedelta(seconds=20))
    ingested: list[Any] = []
    monkeypatch.setattr("broker.services.agent.usage_ingest", lambda **kwargs: ingested.append(kwargs))

    def beat() -> HeartbeatResult:
        return agent_heartbeat(node=Node.objects.get(pk=node.pk), seq=7, now=base)

    results = run_together([beat for _ in range(6)])
    assert all(isinstance(result, HeartbeatResult) for result in results), results
    assert sorted(result.duplicate for result in results if isinstance(result, HeartbeatResult)) == [False] + [True] * 5
    assert NodeHeartbeat.objects.filter(node_id=node.pk).count() == 1
    assert sum(NodeUptime.objects.filter(node_id=node.pk).values_list("up_seconds", flat=True)) == 20


def test_concurrent_distinct_seqs_never_double_count_uptime() -> None:
    node = NodeFactory()
    base = timezone.now()
    Node.objects.filter(pk=node.pk).update(last_heartbeat_at=base - timedelta(seconds=30))

    def beat_at(seq: int) -> Callable[[], HeartbeatResult]:
        return lambda: agent_heartbeat(node=Node.objects.get(pk=node.pk), seq=seq, now=base - timedelta(seconds=seq))

    calls = [beat_at(seq) for seq in range(10)]
    results = run_together(calls)
    assert all(isinstance(result, HeartbeatResult) and not result.duplicate for result in results), results
    assert NodeHeartbeat.objects.filter(node_id=node.pk).count() == 10
    # whatever the order, the node was up from its previous heartbeat to the latest one: 30 s, once
    assert sum(NodeUptime.objects.filter(node_id=node.pk).values_list("up_seconds", flat=True)) == 30
    node.refresh_from_db()
    assert node.last_heartbeat_at == base
