# mypy: disable-error-code="misc"
from datetime import timedelta

import pytest
from django.utils import timezone

from broker.models import Job, JobState, Lease, LeaseSlot, MatchRound
from broker.services.matching import match_round_run
from tests.factories import CustomerFactory, GPUModelFactory, JobFactory, NodeFactory

pytestmark = pytest.mark.django_db


def make_job(customer, **kw):
    return JobFactory(customer=customer, **{"name": "j", "max_price_micros": 5_000_000, **kw})


def test_round_places_jobs_and_records_round():
    node = NodeFactory(gpu_count=4)
    c = CustomerFactory()
    jobs = [make_job(c, gpu_count=g) for g in (1, 2, 1, 4)]
    rnd = match_round_run()
    assert rnd.pk and rnd.placed == 3 and rnd.jobs_considered == 4
    assert rnd.unplaced_reasons == {"contention": 1} or sum(rnd.unplaced_reasons.values()) == 1
    states = {j.pk: Job.objects.get(pk=j.pk).state for j in jobs}
    assert sorted(states.values()).count(JobState.MATCHED) == 3
    slots = list(LeaseSlot.objects.filter(node=node).values_list("slot", flat=True))
    assert sorted(slots) == [0, 1, 2, 3]
    unplaced = next(j for j in jobs if states[j.pk] == JobState.PENDING)
    assert Job.objects.get(pk=unplaced.pk).pending_reason
    # Re-running changes nothing.
    again = match_round_run()
    assert again.placed == 0 and Lease.objects.count() == 3
    assert MatchRound.objects.count() == 2


def test_round_respects_price_and_reports_reason():
    NodeFactory(gpu_count=1, price_micros=3_000_000)
    job = make_job(CustomerFactory(), max_price_micros=2_000_000)
    rnd = match_round_run()
    assert rnd.placed == 0 and rnd.unplaced_reasons == {"price": 1}
    job.refresh_from_db()
    assert job.state == JobState.PENDING and "price" in job.pending_reason


def test_on_demand_pays_ask_interruptible_pays_bid():
    NodeFactory(gpu_count=2, price_micros=1_000_000, min_bid_micros=300_000)
    c = CustomerFactory()
    od = make_job(c, max_price_micros=2_000_000)
    it = make_job(c, mode="interruptible", bid_micros=400_000, max_price_micros=None)
    match_round_run()
    assert Lease.objects.get(job=od).price_micros == 1_000_000
    assert Lease.objects.get(job=it).price_micros == 400_000


def test_gpu_model_constraint():
    a100 = GPUModelFactory(slug="a100-80gb", name="A100 80GB", vram_gb=80, tier="training")
    NodeFactory(gpu_count=1)
    n2 = NodeFactory(gpu_count=1, gpu_model=a100)
    job = make_job(CustomerFactory(), gpu_models=[a100])
    match_round_run()
    assert Lease.objects.get(job=job).node_id == n2.pk


def test_future_start_window_and_expiry():
    now = timezone.now()
    NodeFactory(gpu_count=1)
    c = CustomerFactory()
    late = make_job(c, latest_start=now - timedelta(minutes=1))
    future = make_job(c, mode="reserved", earliest_start=now + timedelta(hours=2))
    match_round_run()
    assert Job.objects.get(pk=late.pk).state == JobState.FAILED
    lease = Lease.objects.get(job=future)
    assert abs((lease.starts_at - (now + timedelta(hours=2))).total_seconds()) < 1
