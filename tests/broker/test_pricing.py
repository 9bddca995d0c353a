# mypy: disable-error-code="misc"
"""The customer's price: the cheapest feasible offer by default (ties by the other scores), never above the
max price; "best performance per dollar" and "most reliable" on request; a booking from an offer lands on
that node or is told why not with the next offers at the same or a lower price; the job page says why."""

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from billing.selectors.wallet import wallet_balance
from broker.engine import PLACE_PERF_PER_DOLLAR, PLACE_RELIABLE, match
from broker.engine.build import make_jobs, make_models, make_nodes
from broker.models import Job, JobState, Lease
from broker.services.leases import lease_create
from broker.services.matching import match_round_run
from tests.broker.booking_helpers import fund, lease_on, node

MODELS = make_models([{"vram": 24}, {"vram": 80}])
JOBS = "/api/v1/jobs/"


def _place(nodes: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> dict[int, int]:
    result = match(jobs=make_jobs(jobs, n_models=2, n_regions=6), nodes=make_nodes(nodes), models=MODELS, now=0.0)
    return {p.job_idx: p.node_idx for p in result.placements}


def test_cheapest_feasible_offer_wins_over_an_exact_fit():
    # The case: a 6-GPU job went to $0.28 (exact fit) while a $0.21 node with 8 free GPUs was idle.
    nodes = [{"gpu_count": 6, "ask": 280_000}, {"gpu_count": 8, "ask": 210_000}]
    assert _place(nodes, [{"gpu_count": 6}]) == {0: 1}
    # Single-GPU jobs too (the per-class fast path), for every job.
    singles = [{"gpu_count": 2, "ask": 230_000}, {"gpu_count": 2, "ask": 210_000}]
    assert _place(singles, [{}, {}]) == {0: 1, 1: 1}


def test_ties_on_price_go_to_the_other_scores_and_never_above_max_price():
    nodes = [
        {"ask": 500_000, "reliability": 0.90},
        {"ask": 500_000, "reliability": 0.999},
        {"ask": 400_000, "reliability": 0.99},
    ]
    assert _place(nodes, [{"price_limit": 450_000}]) == {0: 2}
    assert _place(nodes[:2], [{}]) == {0: 1}  # same price: the more reliable one
    assert _place(nodes[:2], [{"price_limit": 450_000}]) == {}


def test_preferences_perf_per_dollar_and_most_reliable():
    nodes = [
        {"ask": 300_000, "dlperf": 30.0, "reliability": 0.95},  # 100 TFLOPS per $/h
        {"ask": 1_000_000, "dlperf": 200.0, "reliability": 0.97},  # 200 per $/h
        {"ask": 2_000_000, "dlperf": 250.0, "reliability": 0.999},  # 125 per $/h, most reliable
    ]
    assert _place(nodes, [{}]) == {0: 0}
    assert _place(nodes, [{"placement": PLACE_PERF_PER_DOLLAR}]) == {0: 1}
    assert _place(nodes, [{"placement": PLACE_RELIABLE}]) == {0: 2}
    assert _place(nodes, [{"placement": PLACE_RELIABLE, "price_limit": 1_500_000}]) == {0: 1}


def test_pinned_job_takes_its_node_or_none():
    nodes = [{"ask": 200_000}, {"ask": 300_000}]
    assert _place(nodes, [{"pin": 1}]) == {0: 1}
    result = match(
        jobs=make_jobs([{"pin": -2}], n_models=2, n_regions=6), nodes=make_nodes(nodes), models=MODELS, now=0.0
    )
    assert result.placements == [] and result.reasons == {0: "pinned_node"}
    busy = make_nodes(nodes, busy={1: [np.inf] * 4})
    jobs = make_jobs([{"pin": 1}], n_models=2, n_regions=6)
    assert match(jobs=jobs, nodes=busy, models=MODELS, now=0.0).placements == []


# -- through the API, the round and the pages ----------------------------------------------------------


def _booking(**overrides: Any) -> dict[str, Any]:
    data = {"gpu_count": 1, "image": "img", "mode": "on_demand", "max_price": "0.30", "duration_hours": "1"}
    return {**data, **overrides}


@pytest.fixture
def offers(db: Any) -> dict[str, Any]:
    return {
        "cheap": node(name="cheap", gpu_count=2, price_micros=210_000),
        "mid": node(name="mid", gpu_count=8, price_micros=230_000),
        "dear": node(name="dear", gpu_count=8, price_micros=280_000),
    }


def test_default_booking_lands_on_the_cheapest_and_the_page_says_why(
    offers: Any, customer: Any, customer_client: APIClient
) -> None:
    fund(customer, 100)
    assert customer_client.post(JOBS, _booking(), format="json").status_code == 201
    match_round_run()
    lease = Lease.objects.get()
    assert lease.node_id == offers["cheap"].pk and lease.price_micros == 210_000
    assert "cheapest offer" in lease.placement_note and "$0.21" in lease.placement_note
    client = Client()
    client.force_login(customer.user)
    page = client.get(f"/app/jobs/{lease.job_id}/").content.decode()
    assert "Why this node" in page and "cheapest offer" in page


def test_booking_from_an_offer_lands_on_that_node(offers: Any, customer: Any, customer_client: APIClient) -> None:
    fund(customer, 100)
    response = customer_client.post(JOBS, _booking(node=offers["dear"].pk), format="json")
    assert response.status_code == 201, response.content
    match_round_run()
    lease = Lease.objects.get()
    assert lease.node_id == offers["dear"].pk and "you booked from offer search" in lease.placement_note


def test_a_taken_offer_says_so_and_offers_the_next_at_the_same_or_lower_price(
    offers: Any, customer: Any, other_customer: Any, customer_client: APIClient
) -> None:
    fund(customer, 100)
    lease_on(offers["mid"], other_customer, 8)  # taken meanwhile
    response = customer_client.post(JOBS, _booking(node=offers["mid"].pk), format="json")
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "node_taken" and "taken meanwhile" in body["detail"]
    # The next offer at the same or a lower price: cheap ($0.21), never dear ($0.28).
    assert [a["node"] for a in body["errors"]["alternatives"]] == [offers["cheap"].pk]
    assert "$0.21/GPU-hour" in body["detail"]
    assert not Job.objects.filter(customer=customer).exists()
    assert wallet_balance(user=customer.user).held_micros == 0


def test_pinned_node_taken_after_booking_waits_with_a_reason(offers: Any, customer: Any, other_customer: Any) -> None:
    job = Job.objects.create(
        customer=customer,
        name="j",
        gpu_count=2,
        image="img",
        duration_seconds=3600,
        max_price_micros=300_000,
        node=offers["cheap"],
    )
    now = timezone.now()
    other = Job.objects.create(customer=other_customer, name="o", gpu_count=2, image="img", duration_seconds=3600)
    lease_create(  # taken between the booking and the round
        job_id=other.pk,
        node_id=offers["cheap"].pk,
        gpu_slots=[0, 1],
        price_micros=offers["cheap"].price_micros,
        starts_at=now,
        ends_at=now + timedelta(hours=2),
    )
    match_round_run()
    job.refresh_from_db()
    assert job.state == JobState.PENDING and not Lease.objects.filter(job=job).exists()
    assert job.pending_reason  # never silently moved to another (dearer) node


def test_unknown_node_and_bad_placement_are_400(offers: Any, customer: Any, customer_client: APIClient) -> None:
    fund(customer, 100)
    bad_node = customer_client.post(JOBS, _booking(node=999_999), format="json")
    assert bad_node.status_code == 400 and "node" in bad_node.json()["errors"]
    bad_pref = customer_client.post(JOBS, _booking(placement="fastest"), format="json")
    assert bad_pref.status_code == 400 and "placement" in bad_pref.json()["errors"]


def test_search_book_link_carries_the_node(offers: Any, customer: Any) -> None:
    client = Client()
    client.force_login(customer.user)
    page = client.get("/app/search/").content.decode()
    assert f"node={offers['cheap'].pk}" in page
