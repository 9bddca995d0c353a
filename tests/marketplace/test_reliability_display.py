"""One reliability, shown the same everywhere (issue 17, point 3).

A node's reliability is computed once (marketplace.services.reliability) and stored; the API gives the ratio
rounded to 4 places, and every page and the CLI show that number as a percentage with one decimal.
"""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rigshift_client import display

from marketplace.services.reliability import (
    RELIABILITY_MEANING,
    node_reliability_value,
    reliability_percent,
    reliability_public,
)
from tests.factories import CustomerFactory, JobFactory, NodeFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

RATIO = 0.9622422839506173  # the value the CLI printed raw in the issue
SHOWN = "96.2%"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def node():
    return NodeFactory(
        name="rel-node",
        reliability=RATIO,
        last_heartbeat_at=timezone.now() - timedelta(seconds=5),
        agent_registered_at=timezone.now() - timedelta(hours=2),
    )


def test_public_value_and_percentage() -> None:
    assert reliability_public(RATIO) == 0.9622
    assert reliability_percent(RATIO) == SHOWN
    assert reliability_percent(0.96225) == reliability_percent(reliability_public(0.96225))
    assert reliability_percent(None) == "—"
    assert reliability_public(1.7) == 1.0 and reliability_public(-0.1) == 0.0


def test_a_node_that_never_reported_has_no_reliability_yet() -> None:
    fresh = NodeFactory(reliability=0.0, last_heartbeat_at=None, agent_registered_at=None)
    assert node_reliability_value(fresh) is None
    assert reliability_percent(fresh) == "—"
    html = _client(fresh.provider.user).get("/provider/").content.decode()
    assert "0.0%" not in html


def test_every_page_api_and_cli_show_the_same_reliability(node) -> None:
    provider_pages = _client(node.provider.user)
    staff = _client(UserFactory(is_staff=True))
    customer = _client(CustomerFactory().user)
    pages = {
        "provider dashboard": provider_pages.get("/provider/"),
        "provider node page": provider_pages.get(f"/provider/nodes/{node.pk}/"),
        "console nodes": staff.get("/console/nodes/"),
        "console node page": staff.get(f"/console/nodes/{node.pk}/"),
        "customer search": customer.get("/app/search/?q=verified==true"),
    }
    for name, response in pages.items():
        html = response.content.decode()
        assert response.status_code == 200, name
        percentages = set(re.findall(r"\b\d{1,3}\.\d%", html)) - {"15.0%"}
        assert SHOWN in percentages, (name, percentages)

    offers = customer.get("/api/v1/offers/").json()["results"]
    mine = next(o for o in offers if o["node_id"] == node.pk)
    assert mine["reliability"] == 0.9622
    api_node = _client(node.provider.user).get(f"/api/v1/nodes/{node.pk}/").json()
    assert api_node["reliability"] == 0.9622
    assert display.reliability_percent(mine["reliability"]) == SHOWN  # what the CLI prints


def test_schema_documents_the_meaning(client: Client) -> None:
    schema = client.get("/api/schema/?format=json").json()
    offer = schema["components"]["schemas"]["OfferOut"]["properties"]["reliability"]
    assert offer["description"] == RELIABILITY_MEANING and "4 places" in offer["description"]


def test_explanation_and_console_requirements_use_percentages(node) -> None:
    from broker.selectors.console import job_requirements
    from broker.services.explain import job_explain

    customer: Any = CustomerFactory()
    job = JobFactory(
        customer=customer,
        name="j",
        gpu_count=1,
        image="img",
        duration_seconds=3600,
        max_price_micros=5_000_000,
        min_reliability=0.99,
    )
    assert ("Min reliability", "99.0%") in job_requirements(job=job)
    explanation = job_explain(job=job)
    assert explanation.code == "reliability"
    assert f"at {SHOWN}; you require 99.0%" in explanation.message


def test_provider_can_not_read_another_providers_node_reliability(node) -> None:
    other = _client(ProviderFactory().user)
    assert other.get(f"/provider/nodes/{node.pk}/").status_code == 404
