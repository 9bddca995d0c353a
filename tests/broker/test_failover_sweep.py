# mypy: disable-error-code="misc"
"""The failover sweep (beat): leases stranded on an offline node whose node_failover task was lost fail over."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from broker.models import Job, JobState, Lease, LeaseState
from broker.services.failover import nodes_failover_sweep
from broker.services.leases import lease_activate
from broker.services.matching import match_round_run
from broker.tasks import failover_sweep
from marketplace.models import Node, NodeStatus
from marketplace.services.reliability import nodes_mark_offline
from tests.factories import CustomerFactory, JobFactory, NodeFactory

pytestmark = pytest.mark.django_db


def test_a_lost_failover_task_is_made_up_by_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = NodeFactory(gpu_count=2, price_micros=100_000, last_heartbeat_at=timezone.now() - timedelta(hours=1))
    alive = NodeFactory(gpu_count=2, price_micros=900_000, last_heartbeat_at=timezone.now())
    customer = CustomerFactory()
    jobs = [
        JobFactory(
            customer=customer, name="j", gpu_count=1, image="i", duration_seconds=3600, max_price_micros=5_000_000
        )
        for _ in range(3)
    ]
    match_round_run()
    on_dead = list(Lease.objects.filter(node=dead).order_by("pk"))
    on_alive = list(Lease.objects.filter(node=alive))
    assert len(on_dead) == 2 and len(on_alive) == 1
    lease_activate(lease_id=on_dead[0].pk)
    # The node goes offline, but its node_failover task never runs (worker killed, Redis restarted).
    monkeypatch.setattr("broker.dispatch.node_failover", lambda node_id: None)
    assert nodes_mark_offline() == [dead.pk]
    assert Node.objects.get(pk=dead.pk).status == NodeStatus.OFFLINE
    assert Lease.objects.filter(node=dead, state__in=[LeaseState.RESERVED, LeaseState.ACTIVE]).count() == 2
    assert nodes_mark_offline() == []  # the offline sweep will not send it again

    assert failover_sweep() == 2
    assert set(Lease.objects.filter(node=dead).values_list("state", flat=True)) == {LeaseState.FAILED}
    assert Lease.objects.get(pk=on_alive[0].pk).state == LeaseState.RESERVED  # online nodes untouched
    requeued = Job.objects.filter(pk__in=[lease.job_id for lease in on_dead])
    assert set(requeued.values_list("state", flat=True)) == {JobState.PENDING}
    assert nodes_failover_sweep() == 0  # a repeat changes nothing
    assert {j.pk for j in jobs} >= set(requeued.values_list("pk", flat=True))


def test_the_sweep_is_on_the_beat() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["broker-failover-sweep"]
    assert entry["task"] == "broker.tasks.failover_sweep"
    assert float(str(entry["schedule"])) <= 60
