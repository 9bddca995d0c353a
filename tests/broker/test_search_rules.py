"""Search (issue 17, point 7): one rule for unverified nodes on the node form, the search and matching; gpu_name
takes the names users type, and an unknown name is a 400 that lists the names that exist."""

from typing import Any, cast

import pytest
from django.test import Client

from broker.models import Job, JobState
from broker.selectors.offers import offer_search
from broker.services.matching import match_round_run
from marketplace.selectors.nodes import UNVERIFIED_NODE_RULE
from tests.factories import CustomerFactory, JobFactory, NodeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def unverified() -> Any:
    return NodeFactory(name="fresh-rig", verified=False, gpu_count=2)


def _job(customer: Any, *, verified_only: bool) -> Job:
    return cast(
        Job,
        JobFactory(
            customer=customer,
            name="j",
            gpu_count=1,
            image="img",
            duration_seconds=600,
            max_price_micros=5_000_000,
            verified_only=verified_only,
        ),
    )


def test_unverified_node_rule_is_the_same_on_form_search_and_matching(unverified: Any) -> None:
    # the node form and the search page state the one rule
    provider = Client()
    provider.force_login(unverified.provider.user)
    assert UNVERIFIED_NODE_RULE in provider.get("/provider/nodes/new/").content.decode()
    customer = CustomerFactory()
    client = Client()
    client.force_login(customer.user)
    page = client.get("/app/search/").content.decode()
    assert UNVERIFIED_NODE_RULE in page
    # search: listed and online, so shown, marked unverified; its Book link allows unverified nodes
    assert [o.node_name for o in offer_search()] == ["fresh-rig"]
    assert "unverified" in page and "verified_only=0" in page
    booking = client.get("/app/jobs/new/?verified_only=0").content.decode()
    assert 'name="verified_only"' in booking and 'name="verified_only" checked' not in booking
    # matching: a default (verified-only) job waits; one that allows unverified nodes is placed
    strict, relaxed = _job(customer, verified_only=True), _job(customer, verified_only=False)
    match_round_run()
    strict.refresh_from_db()
    relaxed.refresh_from_db()
    assert strict.state == JobState.PENDING and relaxed.state == JobState.MATCHED


@pytest.mark.parametrize("typed", ['"RTX 4090"', "rtx-4090", '"GeForce RTX 4090"', "rtx4090", "4090"])
def test_gpu_name_accepts_names_users_type(typed: str) -> None:
    NodeFactory(name="a-4090")
    assert [o.node_name for o in offer_search(q=f"gpu_name=={typed}")] == ["a-4090"]
    assert offer_search(q=f"gpu_name!={typed}") == []


def test_unknown_gpu_name_is_a_400_listing_the_names(client: Client) -> None:
    NodeFactory(name="a-4090")
    response = client.get("/api/v1/offers/", {"q": 'gpu_name=="RTX 9999"'})
    body = response.json()
    assert response.status_code == 400 and body["code"] == "bad_query"
    assert "No GPU model is called 'RTX 9999'" in body["detail"] and "GeForce RTX 4090 (rtx-4090)" in body["detail"]
    assert "rtx-4090" in body["errors"]["known"]
