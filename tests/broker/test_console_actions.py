"""Console actions: manual assignment (constraint check, audited override, no double booking), cordon,
drain, verify / deverify, pause / resume matching, run a round now. Each through the page, audit-logged."""

from datetime import timedelta
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from broker.models import Job, JobMode, JobState, Lease, LeaseState, MatchRound, PriceOffer, PriceOfferState
from broker.services.console import job_assign_manual, node_cordon
from broker.services.leases import LeasePlan, lease_create, leases_create_bulk
from broker.services.matching import match_round_run, matching_pause_set, matching_paused
from broker.services.price_offers import price_offer_accept, price_offer_decline
from common.errors import Conflict, NotFound, PermissionDenied
from common.models import AuditLog
from marketplace.models import Node
from tests.challenge_helpers import pass_challenge
from tests.factories import JobFactory, NodeFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _matching_running(settings: Any, tmp_path: Any) -> Any:
    settings.VAR_DIR = tmp_path  # a matcher file lock of our own
    matching_pause_set(paused=False)
    yield
    matching_pause_set(paused=False)


@pytest.fixture
def staff() -> Any:
    return UserFactory(is_staff=True, username="operator")


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


HOUR = timedelta(hours=1)


def node(**kwargs: Any) -> Node:
    return cast(Node, NodeFactory(**kwargs))


def pending_job(**kwargs: Any) -> Job:
    return cast(Job, JobFactory(**{"name": "train", "gpu_count": 2, "max_price_micros": 5_000_000, **kwargs}))


def audits(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def page(response: Any) -> str:
    return cast(str, response.content.decode())


# --------------------------------------------------------------------------- manual assignment


def test_assign_to_a_fitting_node(staff_client: Client, staff: User) -> None:
    box = node(name="fits", gpu_count=4, price_micros=900_000)
    job = pending_job(gpu_count=2)
    response = staff_client.post(f"/console/jobs/{job.pk}/assign/", {"node": box.pk}, follow=True)
    assert "leased on node" in page(response)
    lease = Lease.objects.get(job=job)
    assert (lease.node_id, lease.gpu_slots, lease.price_micros) == (box.pk, [0, 1], 900_000)
    assert lease.state == LeaseState.RESERVED
    assert (lease.ends_at - lease.starts_at) == timedelta(hours=1)
    job.refresh_from_db()
    assert job.state == JobState.MATCHED
    [row] = audits("job.assign")
    assert row.actor == staff and row.target == f"job:{job.pk}"
    assert row.details["override"] is False and row.details["lease_id"] == lease.pk
    assert not audits("job.assign_override")


def test_assign_refused_on_constraint_violation_then_allowed_with_audited_override(
    staff_client: Client, staff: User
) -> None:
    us_box = node(name="us-box", region="us", country="US", gpu_count=4)
    job = pending_job(regions=["eu"])
    url = f"/console/jobs/{job.pk}/assign/"

    refused = page(staff_client.post(url, {"node": us_box.pk}, follow=True))
    assert "Not assigned: Node us-box does not meet job" in refused
    assert "the node is not in one of the job&#x27;s regions" in refused
    assert not Lease.objects.filter(job=job).exists()
    assert Job.objects.get(pk=job.pk).state == JobState.PENDING

    no_reason = page(staff_client.post(url, {"node": us_box.pk, "override": "on", "reason": "  "}, follow=True))
    assert "needs a reason" in no_reason
    assert not Lease.objects.filter(job=job).exists()
    assert not AuditLog.objects.filter(action__startswith="job.assign").exists()

    reason = "customer confirmed on the phone that us is fine"
    staff_client.post(url, {"node": us_box.pk, "override": "on", "reason": reason})
    lease = Lease.objects.get(job=job)
    assert lease.node_id == us_box.pk
    assert Job.objects.get(pk=job.pk).state == JobState.MATCHED
    [row] = audits("job.assign_override")
    assert row.actor == staff and row.target == f"job:{job.pk}"
    assert row.details["override"] is True and row.details["violated"] == "region"
    assert row.details["reason"] == reason and row.details["node_id"] == us_box.pk


def test_override_never_double_books_a_gpu(staff_client: Client) -> None:
    box = node(name="full", gpu_count=2)
    first = pending_job(gpu_count=2)
    now = timezone.now()
    lease_create(
        job_id=first.pk,
        node_id=box.pk,
        gpu_slots=[0, 1],
        price_micros=box.price_micros,  # the ask: never below it (price consent)
        starts_at=now,
        ends_at=now + timedelta(hours=3),
    )
    second = pending_job(gpu_count=1, regions=["us"])  # also violates a constraint: override asked
    html = page(
        staff_client.post(
            f"/console/jobs/{second.pk}/assign/", {"node": box.pk, "override": "on", "reason": "try"}, follow=True
        )
    )
    assert "has 0 GPU(s) free" in html and "never leased twice" in html
    assert not Lease.objects.filter(job=second).exists()
    assert not AuditLog.objects.filter(action__startswith="job.assign").exists()


def test_override_cannot_lease_a_cordoned_node(staff_client: Client, staff: User) -> None:
    box = node(name="cordoned", cordoned=True)
    job = pending_job()
    html = page(
        staff_client.post(
            f"/console/jobs/{job.pk}/assign/", {"node": box.pk, "override": "on", "reason": "x"}, follow=True
        )
    )
    assert "is cordoned" in html
    assert not Lease.objects.filter(job=job).exists()


def test_overridden_price_below_the_ask_needs_the_providers_acceptance(staff: User) -> None:
    """Issue 12 point 5: staff leased A100s at $0.80 against the provider's $1.49 ask, and the provider was not told.
    Now such an override only sends the provider an offer; the job is leased when, and only if, it accepts."""
    dear = node(name="dear", price_micros=3_000_000, gpu_count=2)
    job = pending_job(max_price_micros=2_000_000)
    offer = job_assign_manual(job_id=job.pk, node_id=dear.pk, by=staff, override=True, reason="VIP customer")
    assert isinstance(offer, PriceOffer) and (offer.price_micros, offer.floor_micros) == (2_000_000, 3_000_000)
    assert not Lease.objects.filter(job=job).exists() and Job.objects.get(pk=job.pk).state == JobState.PENDING
    # asking again does not stack offers
    assert job_assign_manual(job_id=job.pk, node_id=dear.pk, by=staff, override=True, reason="again").pk == offer.pk
    other = node(name="other-providers")
    with pytest.raises(NotFound):  # only the node's own provider can answer
        price_offer_accept(offer_id=offer.pk, provider=other.provider)
    lease = price_offer_accept(offer_id=offer.pk, provider=dear.provider)
    assert lease.price_micros == 2_000_000 and lease.node_id == dear.pk  # never above the customer's limit
    offer.refresh_from_db()
    assert offer.state == PriceOfferState.ACCEPTED and offer.lease_id == lease.pk
    assert [a.action for a in AuditLog.objects.filter(action__startswith="price_offer")] == [
        "price_offer.create",
        "price_offer.accept",
    ]
    with pytest.raises(Conflict):
        price_offer_decline(offer_id=offer.pk, provider=dear.provider)


def test_a_declined_offer_leases_nothing_and_no_lease_is_ever_priced_below_the_floor(staff: User) -> None:
    dear = node(name="dear", price_micros=3_000_000, min_bid_micros=1_000_000, gpu_count=2)
    job = pending_job(max_price_micros=2_000_000)
    offer = job_assign_manual(job_id=job.pk, node_id=dear.pk, by=staff, override=True, reason="VIP customer")
    assert isinstance(offer, PriceOffer)
    price_offer_decline(offer_id=offer.pk, provider=dear.provider)
    assert PriceOffer.objects.get(pk=offer.pk).state == PriceOfferState.DECLINED
    assert not Lease.objects.filter(job=job).exists()
    now = timezone.now()
    with pytest.raises(Conflict) as below:  # no path leases below the ask, manual or automatic
        lease_create(
            job_id=job.pk, node_id=dear.pk, gpu_slots=[0], price_micros=2_000_000, starts_at=now, ends_at=now + HOUR
        )
    assert below.value.code == "below_ask"
    bid = pending_job(mode=JobMode.INTERRUPTIBLE, bid_micros=500_000, max_price_micros=None)
    with pytest.raises(Conflict, match="minimum bid"):
        leases_create_bulk(plans=[LeasePlan(bid.pk, dear.pk, [1], 500_000, now, now + HOUR)])
    assert not Lease.objects.exists()


def test_the_provider_sees_and_answers_its_offers_on_its_page(staff: User) -> None:
    dear = node(name="dear", price_micros=3_000_000, gpu_count=2)
    job = pending_job(max_price_micros=2_000_000)
    offer = job_assign_manual(job_id=job.pk, node_id=dear.pk, by=staff, override=True, reason="VIP customer")
    client = Client()
    client.force_login(dear.provider.user)
    html = page(client.get("/provider/offers/"))
    assert f"offer-{offer.pk}" in html and "VIP customer" in html and "$2.00" in html and "$3.00" in html
    stranger = Client()
    stranger.force_login(node(name="stranger").provider.user)
    assert f"offer-{offer.pk}" not in page(stranger.get("/provider/offers/"))
    assert stranger.post(f"/provider/offers/{offer.pk}/accept/").status_code == 404
    response = client.post(f"/provider/offers/{offer.pk}/accept/", follow=True)
    assert "is leased on your node" in page(response)
    assert Lease.objects.get(job=job).price_micros == 2_000_000


def test_assign_refused_for_a_job_that_is_not_pending(staff_client: Client, staff: User) -> None:
    box = node(gpu_count=4)
    job = pending_job()
    job_assign_manual(job_id=job.pk, node_id=box.pk, by=staff)
    html = page(staff_client.post(f"/console/jobs/{job.pk}/assign/", {"node": box.pk}, follow=True))
    assert "Not assigned: Job" in html and "only pending jobs can be assigned" in html
    assert Lease.objects.filter(job=job).count() == 1


def test_services_refuse_non_staff() -> None:
    user = cast(User, UserFactory())
    box = node()
    job = pending_job()
    with pytest.raises(PermissionDenied):
        job_assign_manual(job_id=job.pk, node_id=box.pk, by=user)
    with pytest.raises(PermissionDenied):
        node_cordon(node_id=box.pk, by=user)
    assert not Lease.objects.exists()


# --------------------------------------------------------------------------- cordon and drain


def test_cordon_stops_new_leases_and_uncordon_restores(staff_client: Client, staff: User) -> None:
    box = node(gpu_count=2)
    staff_client.post(f"/console/nodes/{box.pk}/cordon/", {"reason": "fan noise"})
    box.refresh_from_db()
    assert box.cordoned is True
    [row] = audits("node.cordon")
    assert row.actor == staff and row.target == f"node:{box.pk}" and row.details["reason"] == "fan noise"
    job = pending_job(gpu_count=1)
    match_round_run()
    assert Job.objects.get(pk=job.pk).state == JobState.PENDING

    staff_client.post(f"/console/nodes/{box.pk}/cordon/")  # repeat: no second audit row
    assert len(audits("node.cordon")) == 1

    staff_client.post(f"/console/nodes/{box.pk}/uncordon/")
    box.refresh_from_db()
    assert box.cordoned is False and len(audits("node.uncordon")) == 1
    match_round_run()
    assert Job.objects.get(pk=job.pk).state == JobState.MATCHED


def test_drain_lets_leases_finish_by_default(staff_client: Client, staff: User) -> None:
    box = node(gpu_count=2)
    job = pending_job(gpu_count=1)
    lease = job_assign_manual(job_id=job.pk, node_id=box.pk, by=staff)
    html = page(staff_client.post(f"/console/nodes/{box.pk}/drain/", {"reason": "maintenance"}, follow=True))
    assert "1 lease(s) run to their end" in html
    box.refresh_from_db()
    lease.refresh_from_db()
    assert box.cordoned is True and lease.state == LeaseState.RESERVED
    [row] = audits("node.drain")
    assert row.details["end_leases"] is False and row.details["leases_left"] == 1
    assert audits("node.cordon")[0].details["reason"] == "drain: maintenance"


def test_drain_now_ends_leases_and_requeues_jobs(staff_client: Client, staff: User) -> None:
    box = node(gpu_count=2)
    job = pending_job(gpu_count=1)
    lease = job_assign_manual(job_id=job.pk, node_id=box.pk, by=staff)
    html = page(staff_client.post(f"/console/nodes/{box.pk}/drain/", {"end_leases": "on"}, follow=True))
    assert "1 lease(s) ended" in html
    lease.refresh_from_db()
    job.refresh_from_db()
    assert lease.state == LeaseState.FAILED and "drained by staff" in lease.end_reason
    assert job.state == JobState.PENDING and job.retries == 1  # back in the queue (no other node here)
    [row] = audits("node.drain")
    assert row.details == {"end_leases": True, "leases_ended": 1, "leases_left": 0, "reason": ""}


# --------------------------------------------------------------------------- verification


def test_verify_refused_while_hardware_mismatch(staff_client: Client) -> None:
    box = node(
        verified=False,
        agent_registered_at=timezone.now(),
        hardware_mismatch="registered 4× GeForce RTX 4090, agent sees 2× GeForce RTX 3060",
    )
    html = page(staff_client.post(f"/console/nodes/{box.pk}/verify/", follow=True))
    assert "Not verified:" in html and "does not match the registration" in html
    box.refresh_from_db()
    assert box.verified is False
    assert not audits("node.verify")


def test_verify_and_deverify_are_audited(staff_client: Client, staff: User) -> None:
    box = node(verified=False, agent_registered_at=timezone.now())
    html = page(staff_client.post(f"/console/nodes/{box.pk}/verify/", follow=True))
    assert "Not verified:" in html and "compute challenge not passed yet" in html
    pass_challenge(box)
    html = page(staff_client.post(f"/console/nodes/{box.pk}/verify/", follow=True))
    assert "is verified" in html
    box.refresh_from_db()
    assert box.verified is True
    assert audits("node.verify")[0].actor == staff
    staff_client.post(f"/console/nodes/{box.pk}/deverify/", {"reason": "benchmark far off"})
    box.refresh_from_db()
    assert box.verified is False
    [row] = audits("node.deverify")
    assert row.actor == staff and row.details["reason"] == "benchmark far off"


# --------------------------------------------------------------------------- matching controls


def test_pause_resume_and_run_a_round_now(staff_client: Client, staff: User) -> None:
    node(gpu_count=2)
    job = pending_job(gpu_count=1)
    staff_client.post("/console/matching/pause/", {"reason": "incident 42", "next": "/console/"})
    assert matching_paused() is True
    assert audits("matching.pause")[0].details["reason"] == "incident 42"

    html = page(staff_client.post("/console/matching/run/", {"next": "/console/"}, follow=True))
    assert "No round ran: paused" in html and 'id="matching-state">paused' in html
    assert Job.objects.get(pk=job.pk).state == JobState.PENDING
    assert not MatchRound.objects.exists()

    staff_client.post("/console/matching/resume/")
    assert matching_paused() is False and len(audits("matching.resume")) == 1

    response = staff_client.post("/console/matching/run/")
    rnd = MatchRound.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/console/rounds/{rnd.pk}/"
    assert rnd.placed == 1 and rnd.jobs_considered == 1
    assert Job.objects.get(pk=job.pk).state == JobState.MATCHED
    run_rows = audits("matching.run_round")
    assert [r.details["placed"] for r in run_rows] == [0, 1]
    assert run_rows[-1].target == f"round:{rnd.pk}"


def test_next_parameter_stays_inside_the_console(staff_client: Client) -> None:
    response = staff_client.post("/console/matching/pause/", {"next": "https://evil.example/"})
    assert response["Location"] == "/console/"
    response = staff_client.post("/console/matching/resume/", {"next": "/console//evil.example"})
    assert response["Location"] == "/console/"
