"""Issue 12, point 7: one bad job cannot stop matching; preemption meets the new lease at the round's one time;
every round is recorded; /healthz and a metric say when no round has succeeded while jobs wait.

These go through the real round (`match_round_run`) on whichever database the suite runs on: SQLite locally,
PostgreSQL (exclusion constraint on lease slots) in CI."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from broker import engine
from broker.models import Job, JobMode, JobState, Lease, LeaseSlot, LeaseState, MatchRound
from broker.services import matching
from broker.services.jobs import job_cancel
from broker.services.leases import LeasePlan, lease_activate, leases_create_bulk
from broker.services.matching import match_round_run
from tests.factories import CustomerFactory, NodeFactory

pytestmark = pytest.mark.django_db


def make_job(customer: Any, **kw: Any) -> Job:
    defaults: dict[str, Any] = {
        "name": "j",
        "gpu_count": 1,
        "image": "img",
        "duration_seconds": 3600,
        "max_price_micros": 5_000_000,
    }
    defaults.update(kw)
    return Job.objects.create(customer=customer, **defaults)


def far_job(customer: Any) -> Job:
    """Booked before the horizon existed: its window opens in the last hour of year 9999, so its lease would
    end in year 10000 (`ValueError: year 10000 is out of range` used to fail every round)."""
    return make_job(
        customer,
        mode=JobMode.RESERVED,
        earliest_start=datetime(9999, 12, 31, 23, 0, tzinfo=UTC),
        latest_start=datetime(9999, 12, 31, 23, 30, tzinfo=UTC),
        duration_seconds=7200,
    )


def test_a_job_the_round_cannot_process_is_quarantined_and_the_good_one_matches_in_the_same_round() -> None:
    NodeFactory(gpu_count=2)
    bad = far_job(CustomerFactory())
    good = make_job(CustomerFactory())
    rnd = match_round_run()
    assert rnd.pk and rnd.status == "ok" and rnd.error == ""
    assert rnd.placed == 1 and rnd.quarantined == 1
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.state == JobState.MATCHED
    assert bad.state == JobState.QUARANTINED and "booking horizon" in bad.quarantine_reason
    assert bad.events.filter(to_state=JobState.QUARANTINED).exists()
    # The customer sees why, and may cancel it.
    owner = Client()
    owner.force_login(bad.customer.user)
    page = owner.get(f"/app/jobs/{bad.pk}/").content.decode()
    assert "Quarantined" in page and "booking horizon" in page
    job_cancel(job=bad, customer=bad.customer)
    bad.refresh_from_db()
    assert bad.state == JobState.CANCELLED


def test_a_placement_that_cannot_be_planned_is_quarantined_not_fatal(settings: Any) -> None:
    # With a horizon that reaches year 9999 the pre-check lets the far job through; its lease cannot be
    # represented, and that one placement is set aside while the good one commits.
    settings.RIGSHIFT_BOOKING_HORIZON_DAYS = 2_930_000
    NodeFactory(gpu_count=2)
    bad = far_job(CustomerFactory())
    good = make_job(CustomerFactory())
    rnd = match_round_run()
    assert rnd.status == "ok" and rnd.placed == 1 and rnd.quarantined == 1
    assert Job.objects.get(pk=good.pk).state == JobState.MATCHED
    bad.refresh_from_db()
    assert bad.state == JobState.QUARANTINED and "cannot be represented" in bad.quarantine_reason


def test_a_placement_whose_commit_conflicts_is_quarantined_and_the_others_commit(monkeypatch: Any) -> None:
    node_a: Any = NodeFactory(gpu_count=1)
    node_b: Any = NodeFactory(gpu_count=1)
    customer = CustomerFactory()
    jobs = [make_job(customer), make_job(customer)]
    blocker = make_job(CustomerFactory(), state=JobState.MATCHED)
    real_match = engine.match

    def match_then_race(**kw: Any) -> engine.Result:
        """After the snapshot, someone else (staff's manual assignment, say) leases node B's GPU."""
        result = real_match(**kw)
        now = timezone.now()
        leases_create_bulk(
            plans=[
                LeasePlan(
                    job_id=blocker.pk,
                    node_id=node_b.pk,
                    gpu_slots=[0],
                    price_micros=node_b.price_micros,
                    starts_at=now - timedelta(minutes=1),
                    ends_at=now + timedelta(hours=5),
                )
            ]
        )
        return result

    monkeypatch.setattr(matching.engine, "match", match_then_race)
    rnd = match_round_run()
    assert rnd.status == "ok" and rnd.placed == 1 and rnd.quarantined == 1
    states = {j.pk: Job.objects.get(pk=j.pk) for j in jobs}
    matched = [j for j in states.values() if j.state == JobState.MATCHED]
    quarantined = [j for j in states.values() if j.state == JobState.QUARANTINED]
    assert len(matched) == 1 and len(quarantined) == 1
    assert Lease.objects.get(job=matched[0]).node_id == node_a.pk
    assert "could not be committed" in quarantined[0].quarantine_reason
    assert LeaseSlot.objects.filter(node=node_b).count() == 1  # only the racer's


def test_preemption_ends_the_old_lease_exactly_where_the_new_one_starts() -> None:
    node: Any = NodeFactory(gpu_count=1, price_micros=1_000_000, min_bid_micros=300_000)
    spot = make_job(CustomerFactory(), mode=JobMode.INTERRUPTIBLE, bid_micros=400_000, max_price_micros=None)
    first = match_round_run()
    assert first.placed == 1
    old = Lease.objects.get(job=spot)
    assert lease_activate(lease_id=old.pk)
    urgent = make_job(CustomerFactory(), max_price_micros=2_000_000)
    second = match_round_run()  # its one time is taken before any of its writes
    assert second.status == "ok" and second.error == "", second.error
    assert second.preempted == 1 and second.placed == 1
    old.refresh_from_db()
    new = Lease.objects.get(job=urgent)
    assert old.state == LeaseState.PREEMPTED
    at = new.starts_at
    assert old.ended_at == at  # one time for the whole round: no overlap, no gap
    old_slot = LeaseSlot.objects.get(lease=old)
    new_slot = LeaseSlot.objects.get(lease=new)
    assert old_slot.ends_at == new_slot.starts_at == at and old_slot.slot == new_slot.slot == 0
    assert Job.objects.get(pk=spot.pk).state == JobState.PENDING
    assert new.node_id == node.pk


def test_a_failed_round_is_recorded_and_healthz_and_the_metric_say_matching_is_stalled(
    monkeypatch: Any, settings: Any
) -> None:
    settings.RIGSHIFT_MATCH_STALL_S = 60
    NodeFactory(gpu_count=1)
    job = make_job(CustomerFactory())
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=10))

    def broken(**kw: Any) -> Any:
        raise RuntimeError("snapshot exploded")

    monkeypatch.setattr(matching, "snapshot_take", broken)
    rnd = match_round_run()
    assert rnd.pk and rnd.status == "failed" and "snapshot exploded" in rnd.error
    assert MatchRound.objects.filter(status="failed").count() == 1
    client = Client()
    health = client.get("/healthz")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "degraded" and body["matching"]["ok"] is False
    assert "stalled" in body["matching"]["detail"] and "snapshot exploded" in body["matching"]["detail"]
    assert "rigshift_match_stalled 1.0" in client.get("/metrics").content.decode()
    # An operator's pause is intended: not degraded (a 503 would pull every web server from its load balancer).
    matching.matching_pause_set(paused=True)
    health = client.get("/healthz")
    assert health.status_code == 200 and "paused by an operator" in health.json()["matching"]["detail"]
    matching.matching_pause_set(paused=False)
    # The console lists the failed round with its error.
    monkeypatch.undo()
    settings.RIGSHIFT_MATCH_STALL_S = 60
    assert match_round_run().status == "ok"
    assert client.get("/healthz").status_code == 200
    assert "rigshift_match_stalled 0.0" in client.get("/metrics").content.decode()
