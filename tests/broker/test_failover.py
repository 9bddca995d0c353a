# mypy: disable-error-code="misc"
"""Failover: a node that stops heartbeating loses its leases; jobs go back to pending with history and
retries; a node that comes back does not resurrect failed leases; rounds place the jobs elsewhere."""

from datetime import timedelta

import pytest
from django.utils import timezone

from broker.models import Job, JobEvent, JobState, Lease, LeaseState
from broker.services.failover import node_failover
from broker.services.leases import lease_activate
from broker.services.matching import match_round_run
from marketplace.models import Node, NodeStatus
from marketplace.services.reliability import nodes_mark_offline
from tests.factories import CustomerFactory, JobFactory, NodeFactory

pytestmark = pytest.mark.django_db


def book(**kw):
    defaults = {"name": "j", "gpu_count": 1, "image": "img", "duration_seconds": 3600, "max_price_micros": 5_000_000}
    defaults.update(kw)
    return JobFactory(customer=CustomerFactory(), **defaults)


def test_offline_sweep_fails_leases_over_and_jobs_are_placed_elsewhere(django_capture_on_commit_callbacks):
    stale = timezone.now() - timedelta(hours=1)
    first = NodeFactory(gpu_count=2, price_micros=100_000, last_heartbeat_at=stale)
    job = book()
    match_round_run()
    lease = Lease.objects.get(job=job)
    assert lease.node_id == first.pk
    lease_activate(lease_id=lease.pk)
    backup = NodeFactory(gpu_count=2, price_micros=200_000, last_heartbeat_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert nodes_mark_offline() == [first.pk]
    lease.refresh_from_db()
    job.refresh_from_db()
    assert lease.state == LeaseState.FAILED and lease.end_reason == "node went offline"
    assert job.retries == 1
    # Re-queued with history, and (eager round after the failure) placed on the backup node.
    steps = list(JobEvent.objects.filter(job=job).values_list("from_state", "to_state"))
    assert (JobState.RUNNING, JobState.PENDING) in steps
    match_round_run()
    job.refresh_from_db()
    assert job.state == JobState.MATCHED
    assert Lease.objects.get(job=job, state=LeaseState.RESERVED).node_id == backup.pk


def test_repeat_failover_is_noop_and_node_return_does_not_resurrect():
    node = NodeFactory(gpu_count=1)
    job = book(max_retries=0)
    match_round_run()
    assert node_failover(node_id=node.pk) == 1
    assert node_failover(node_id=node.pk) == 0
    job.refresh_from_db()
    assert job.state == JobState.FAILED  # retry budget 0
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.ONLINE)
    match_round_run()
    assert Lease.objects.get(job=job).state == LeaseState.FAILED
    assert not Lease.objects.filter(state__in=[LeaseState.RESERVED, LeaseState.ACTIVE]).exists()


def test_offline_node_gets_no_new_leases():
    NodeFactory(gpu_count=4, status=NodeStatus.OFFLINE)
    job = book()
    rnd = match_round_run()
    assert rnd.placed == 0 and Job.objects.get(pk=job.pk).state == JobState.PENDING
