# mypy: disable-error-code="misc"
"""Backfill: a GPU held for a later reservation takes shorter work that ends before the reservation starts
(the issue's case: a 72-second job refused while the GPU sat idle for 4 minutes before a reservation)."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from broker.engine import match
from broker.engine.build import make_jobs, make_models, make_nodes
from broker.models import Job, JobState, Lease, LeaseSlot
from broker.services.leases import lease_create
from broker.services.matching import match_round_run
from tests.factories import CustomerFactory, NodeFactory

MODELS = make_models([{"vram": 24}])


def _gapped(reserved_from: float, reserved_to: float):
    nodes = make_nodes([{"gpu_count": 1}], busy={0: [reserved_to]})
    nodes.gap_until = np.full(nodes.slot_free_at.shape, -np.inf)
    nodes.gap_until[0, 0] = reserved_from
    return nodes


def test_engine_backfills_a_short_job_before_the_reservation():
    nodes = _gapped(240.0, 3840.0)
    jobs = make_jobs([{"duration": 72.0}, {"duration": 72.0}], n_models=1, n_regions=6)
    result = match(jobs=jobs, nodes=nodes, models=MODELS, now=0.0)
    assert [(p.job_idx, p.slots, p.why) for p in result.placements] == [(0, [0], "backfill")]
    assert result.reasons == {1: "capacity"}  # the gap is used once
    assert nodes.gap_until[0, 0] == 240.0  # the caller's arrays are untouched


def test_engine_does_not_backfill_work_that_would_run_into_the_reservation():
    jobs = make_jobs([{"duration": 300.0}], n_models=1, n_regions=6)
    result = match(jobs=jobs, nodes=_gapped(240.0, 3840.0), models=MODELS, now=0.0)
    assert result.placements == [] and result.reasons == {0: "capacity"}


@pytest.mark.django_db
def test_a_72_second_job_runs_before_a_reservation_four_minutes_away():
    node = NodeFactory(gpu_count=1)
    c = CustomerFactory()
    now = timezone.now()
    reserved = Job.objects.create(customer=c, name="r", gpu_count=1, image="i", duration_seconds=3600)
    lease_create(
        job_id=reserved.pk,
        node_id=node.pk,
        gpu_slots=[0],
        price_micros=node.price_micros,
        starts_at=now + timedelta(minutes=4),
        ends_at=now + timedelta(minutes=64),
    )
    short = Job.objects.create(customer=c, name="s", gpu_count=1, image="i", duration_seconds=72, max_price_micros=5e6)
    long = Job.objects.create(customer=c, name="l", gpu_count=1, image="i", duration_seconds=600, max_price_micros=5e6)
    match_round_run(now=now)
    lease = Lease.objects.get(job=short)
    assert lease.node_id == node.pk and lease.ends_at <= now + timedelta(minutes=4)
    assert "Backfill" in lease.placement_note
    long.refresh_from_db()
    assert long.state == JobState.PENDING
    assert LeaseSlot.objects.filter(node=node).count() == 2  # no overlap: the database accepted both
