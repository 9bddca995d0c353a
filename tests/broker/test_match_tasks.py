# mypy: disable-error-code="misc"
"""Match rounds as Celery tasks: a booking triggers a round (eager in tests), the debounce, the shard
lock, the pause switch, and the beat entries."""

from unittest import mock

import pytest
from django.conf import settings

from broker import dispatch, tasks
from broker.locks import shard_lock
from broker.models import JobState, Lease, MatchRound
from broker.services.jobs import job_book
from broker.services.matching import match_round_run, matching_pause_set
from tests.broker.booking_helpers import fund
from tests.factories import CustomerFactory, JobFactory, NodeFactory

pytestmark = pytest.mark.django_db


def booking():
    return {
        "name": "t",
        "gpu_count": 1,
        "image": "img",
        "mode": "on_demand",
        "max_price": "1.00",
        "duration_hours": "1",
        "regions": ["eu"],
    }


def test_booking_triggers_a_round_that_matches_it(django_capture_on_commit_callbacks):
    NodeFactory(gpu_count=2, region="eu")
    customer = CustomerFactory()
    fund(customer, 10)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_book(customer=customer, data=booking())
    job.refresh_from_db()
    assert job.state == JobState.MATCHED
    assert Lease.objects.filter(job=job).count() == 1
    assert MatchRound.objects.filter(placed=1).exists()


def test_match_round_task_is_idempotent():
    NodeFactory(gpu_count=1)
    JobFactory(customer=CustomerFactory(), name="j", gpu_count=1, image="i", duration_seconds=60)
    tasks.match_round.delay("default")
    tasks.match_round.delay("default")
    assert Lease.objects.count() == 1 and MatchRound.objects.count() == 2


def test_match_round_soon_is_debounced_until_the_round_starts():
    dispatch.match_round_started("default")
    with (
        mock.patch.object(dispatch, "tasks_eager", return_value=False),
        mock.patch("common.dispatch.tasks_eager", return_value=False),
        mock.patch("common.dispatch.current_app.send_task") as send_task,
    ):
        dispatch.match_round_request()  # what match_round_soon runs on commit
        dispatch.match_round_request()
        assert send_task.call_count == 1
        assert send_task.call_args.args == (dispatch.MATCH_ROUND,)
        assert send_task.call_args.kwargs["countdown"] < 1
        tasks.match_round.run("default")  # the round starts: later bookings ask again
        dispatch.match_round_request()
        assert send_task.call_count == 2


def test_match_round_soon_sends_nothing_for_a_rolled_back_transaction(django_capture_on_commit_callbacks):
    with mock.patch.object(dispatch, "match_round_request") as request:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            dispatch.match_round_soon()
        assert request.call_count == 0  # not before commit
        assert len(callbacks) == 1
        callbacks[0]()
        assert request.call_args.args == ("default",)


def test_second_matcher_skips_while_the_shard_lock_is_held():
    NodeFactory(gpu_count=1)
    JobFactory(customer=CustomerFactory(), name="j", gpu_count=1, image="i", duration_seconds=60)
    with shard_lock(shard="default") as held:
        assert held
        rnd = match_round_run(wait_s=0)
        assert rnd.pk is None and "another matcher" in rnd.note
    assert match_round_run().placed == 1


def test_paused_matching_places_nothing():
    NodeFactory(gpu_count=1)
    JobFactory(customer=CustomerFactory(), name="j", gpu_count=1, image="i", duration_seconds=60)
    matching_pause_set(paused=True)
    try:
        assert match_round_run().note == "paused"
        assert Lease.objects.count() == 0
    finally:
        matching_pause_set(paused=False)
    assert match_round_run().placed == 1


def test_beat_runs_rounds_every_few_seconds():
    entry = settings.CELERY_BEAT_SCHEDULE["broker-match-round"]
    assert entry["task"] == "broker.tasks.match_round" and float(entry["schedule"]) <= 10
    assert settings.CELERY_BEAT_SCHEDULE["broker-leases-expire"]["task"] == "broker.tasks.leases_expire"
