from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from broker.services.quotes import job_quote
from common.errors import ValidationFailed
from tests.broker.booking_helpers import lease_on, node

pytestmark = pytest.mark.django_db

URL = "/api/v1/quotes/"


@pytest.fixture
def market(db: Any) -> dict[str, Any]:
    return {
        "cheap": node(name="eu-cheap", gpu="rtx-4090", gpu_count=4, price_micros=350_000, region="eu"),
        "mid": node(name="eu-mid", gpu="rtx-4090", gpu_count=2, price_micros=450_000, region="eu"),
        "h100": node(name="us-h100", gpu="h100-sxm", gpu_count=8, price_micros=2_500_000, region="us"),
        "unverified": node(name="eu-unverified", gpu="rtx-4090", gpu_count=4, price_micros=100_000, verified=False),
    }


def test_quote_counts_matching_nodes_prices_and_max_cost(market: dict[str, Any], customer_client: APIClient) -> None:
    response = customer_client.post(
        URL,
        {"gpu_count": 2, "min_gpu_ram": 24, "regions": ["eu"], "max_price": "0.50", "duration_hours": "3"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["matching_nodes"] == 2
    assert body["price_range"] == {"min": "0.350000", "max": "0.450000"}
    assert [o["node_name"] for o in body["cheapest"]] == ["eu-cheap", "eu-mid"]
    assert body["max_cost"] == "3.000000"  # 0.50 × 2 × 3
    assert body["estimated_start"] is not None


def test_unverified_nodes_count_only_when_allowed(market: dict[str, Any], customer: Any) -> None:
    strict = job_quote(customer=customer, requirements={"gpu_count": 1, "regions": ["eu"]})
    loose = job_quote(customer=customer, requirements={"gpu_count": 1, "regions": ["eu"], "verified_only": False})
    assert strict.matching_nodes == 2
    assert loose.matching_nodes == 3
    assert loose.cheapest[0].node_name == "eu-unverified"
    assert strict.max_cost_micros is None  # no price limit, no duration: nothing to hold yet


def test_busy_market_estimates_the_earliest_lease_end(market: dict[str, Any], customer: Any) -> None:
    lease_on(market["h100"], customer, 6, hours=1)
    second = lease_on(market["h100"], customer, 2, hours=3)
    quote = job_quote(customer=customer, requirements={"gpu_count": 4, "gpu_models": ["h100-sxm"], "max_price": "3"})
    assert quote.matching_nodes == 0
    first_end = market["h100"].leases.order_by("ends_at").first().ends_at
    assert quote.estimated_start == first_end
    assert quote.estimated_start < second.ends_at


def test_price_below_every_ask_has_no_start_and_says_why(market: dict[str, Any], customer: Any) -> None:
    quote = job_quote(customer=customer, requirements={"gpu_count": 1, "max_price": "0.05", "duration_hours": 1})
    assert quote.matching_nodes == 0
    assert quote.estimated_start is None
    assert "price" in quote.estimated_start_reason
    assert quote.price_min is None


def test_reserved_quote_starts_at_its_window(market: dict[str, Any], customer: Any) -> None:
    start = timezone.now() + timedelta(hours=5)
    quote = job_quote(
        customer=customer,
        requirements={
            "gpu_count": 1,
            "mode": "reserved",
            "max_price": "1",
            "duration_hours": 2,
            "earliest_start": start.isoformat(),
            "latest_start": (start + timedelta(hours=1)).isoformat(),
        },
    )
    assert quote.estimated_start == start


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ({"gpu_count": 16}, "gpu_count 16 exceeds the largest node (8 GPUs)"),
        ({"gpu_count": 1, "min_gpu_ram": 500}, "min_gpu_ram 500 exceeds the largest GPU (80 GB)"),
        ({"gpu_count": 1, "min_tier": "training", "regions": ["eu"]}, "together"),
    ],
)
def test_impossible_quote_is_400(
    market: dict[str, Any], customer_client: APIClient, requirements: dict[str, Any], message: str
) -> None:
    response = customer_client.post(URL, requirements, format="json")
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_empty_market_is_a_clear_400(customer: Any) -> None:
    with pytest.raises(ValidationFailed, match="No hardware is listed"):
        job_quote(customer=customer, requirements={"gpu_count": 1})


def test_bad_quote_input_is_400(market: dict[str, Any], customer_client: APIClient) -> None:
    assert customer_client.post(URL, {}, format="json").status_code == 400
    assert customer_client.post(URL, {"gpu_count": "x"}, format="json").status_code == 400
    assert customer_client.post(URL, [1, 2], format="json").status_code == 400
