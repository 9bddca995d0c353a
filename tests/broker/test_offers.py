from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from broker.models import LeaseState
from broker.selectors.offer_query import FIELDS
from broker.selectors.offers import offer_search
from marketplace.models import NodeStatus
from tests.broker.booking_helpers import lease_on, node

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(customer: Any) -> dict[str, Any]:
    """Three nodes with different hardware, plus nodes that must never show."""
    a = node(
        name="a-4090",
        gpu="rtx-4090",
        gpu_count=4,
        price_micros=400_000,
        min_bid_micros=200_000,
        region="eu",
        country="DE",
        reliability=0.99,
        verified=True,
        dlperf=150.0,
        inet_down_mbps=1000,
        inet_up_mbps=500,
        cpu_cores=32,
        ram_gb=128,
        disk_gb=2000,
    )
    b = node(
        name="b-h100",
        gpu="h100-sxm",
        gpu_count=8,
        price_micros=2_500_000,
        min_bid_micros=1_500_000,
        region="us",
        country="US",
        reliability=0.995,
        verified=True,
        dlperf=900.0,
        inet_down_mbps=10000,
        inet_up_mbps=10000,
        cpu_cores=128,
        ram_gb=1024,
        disk_gb=16000,
    )
    c = node(
        name="c-3090",
        gpu="rtx-3090",
        gpu_count=2,
        price_micros=250_000,
        min_bid_micros=100_000,
        region="asia",
        country="JP",
        reliability=0.95,
        verified=False,
        dlperf=None,
        inet_down_mbps=500,
        inet_up_mbps=100,
        cpu_cores=16,
        ram_gb=64,
        disk_gb=1000,
    )
    node(name="unlisted", listed=False)
    node(name="offline", status=NodeStatus.OFFLINE)
    node(name="cordoned", cordoned=True)
    node(name="not-yet", available_from=timezone.now() + timedelta(days=1))
    node(name="expired", available_until=timezone.now() - timedelta(hours=1))
    full = node(name="full", gpu_count=2)
    lease_on(full, customer, 2)
    return {"a": a, "b": b, "c": c, "full": full}


def names(q: str = "", order: str | None = None) -> list[str]:
    return [o.node_name for o in offer_search(q=q, order=order)]


def test_only_listed_online_uncordoned_nodes_with_free_gpus(market: dict[str, Any]) -> None:
    assert names() == ["c-3090", "a-4090", "b-h100"]  # price ascending by default


def test_free_gpus_subtract_live_leases_only(market: dict[str, Any], customer: Any) -> None:
    lease_on(market["b"], customer, 3)
    lease_on(market["b"], customer, 1, state=LeaseState.ENDED)
    old = lease_on(market["b"], customer, 2)
    old.starts_at = timezone.now() - timedelta(hours=5)
    old.ends_at = timezone.now() - timedelta(hours=1)
    old.save()
    offers = {o.node_name: o for o in offer_search()}
    assert offers["b-h100"].num_gpus == 5
    assert offers["b-h100"].total_gpus == 8
    assert names("num_gpus>=5") == ["b-h100"]
    assert names("num_gpus>5") == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("gpu_name==rtx-4090", ["a-4090"]),
        ('gpu_name=="H100 SXM"', ["b-h100"]),
        ("gpu_name in [rtx-3090,h100-sxm]", ["c-3090", "b-h100"]),
        ("gpu_name notin [rtx-3090,h100-sxm]", ["a-4090"]),
        ("gpu_name!=rtx-4090", ["c-3090", "b-h100"]),
        ("num_gpus>=4", ["a-4090", "b-h100"]),
        ("gpu_ram>=80", ["b-h100"]),
        ("gpu_ram<80", ["c-3090", "a-4090"]),
        ("compute_cap>=8.9", ["a-4090", "b-h100"]),
        ("tier==training", ["b-h100"]),
        ("region in [eu,us]", ["a-4090", "b-h100"]),
        ("region notin [eu,us]", ["c-3090"]),
        ("region==asia", ["c-3090"]),
        ("country==de", ["a-4090"]),
        ("country!=DE", ["c-3090", "b-h100"]),
        ("reliability>0.98", ["a-4090", "b-h100"]),
        ("verified==true", ["a-4090", "b-h100"]),
        ("verified==false", ["c-3090"]),
        ("verified!=true", ["c-3090"]),
        ("price<=0.40", ["c-3090", "a-4090"]),
        ("price>1", ["b-h100"]),
        ("price in [0.25,2.5]", ["c-3090", "b-h100"]),
        ("min_bid>=0.2", ["a-4090", "b-h100"]),
        ("dlperf>=100", ["a-4090", "b-h100"]),
        ("dlperf!=150", ["c-3090", "b-h100"]),
        ("dlperf_per_dollar>=375", ["a-4090"]),
        ("inet_down>=1000", ["a-4090", "b-h100"]),
        ("inet_up<500", ["c-3090"]),
        ("cpu_cores>=32", ["a-4090", "b-h100"]),
        ("ram>=1024", ["b-h100"]),
        ("disk<2000", ["c-3090"]),
        ("gpu_ram>=24 num_gpus>=2 reliability>0.98 region in [eu,us] verified==true", ["a-4090", "b-h100"]),
    ],
)
def test_each_field_filters(market: dict[str, Any], q: str, expected: list[str]) -> None:
    assert names(q) == expected


def test_tier_comparisons_follow_rank(market: dict[str, Any]) -> None:
    tiers = {o.node_name: o.tier for o in offer_search()}
    assert tiers["b-h100"] == "training"
    assert "b-h100" in names("tier>=fine_tuning")
    assert "b-h100" not in names("tier<training")


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("price", ["c-3090", "a-4090", "b-h100"]),
        ("-price", ["b-h100", "a-4090", "c-3090"]),
        ("-num_gpus", ["b-h100", "a-4090", "c-3090"]),
        ("-dlperf", ["b-h100", "a-4090", "c-3090"]),  # no benchmark sorts last
        ("dlperf", ["a-4090", "b-h100", "c-3090"]),
        ("-reliability", ["b-h100", "a-4090", "c-3090"]),
        ("gpu_ram", ["c-3090", "a-4090", "b-h100"]),
        ("-dlperf_per_dollar", ["a-4090", "b-h100", "c-3090"]),
    ],
)
def test_ordering(market: dict[str, Any], order: str, expected: list[str]) -> None:
    assert names(order=order) == expected


def test_offer_fields_are_dollars_as_decimals(market: dict[str, Any]) -> None:
    offer = next(o for o in offer_search() if o.node_name == "a-4090")
    assert offer.price == Decimal("0.400000")
    assert offer.min_bid == Decimal("0.200000")
    assert offer.gpu_slug == "rtx-4090"
    assert offer.dlperf_per_dollar == 375.0


def test_api_is_public_and_returns_json(market: dict[str, Any], api_client: APIClient) -> None:
    response = api_client.get("/api/v1/offers/", {"q": "gpu_ram>=24 region in [eu,us]", "order": "-price"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [r["node_name"] for r in body["results"]] == ["b-h100", "a-4090"]
    first = body["results"][0]
    assert first["price"] == "2.500000"
    assert set(FIELDS) - {"price"} <= set(first) | {"gpu_name"}


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"q": "gpu_ram>=abc"}, "gpu_ram>=abc"),
        ({"q": "tier==gold"}, "tier==gold"),
        ({"q": "verified==maybe"}, "verified==maybe"),
        ({"q": "price in 3"}, "price in 3"),
        ({"q": "colour==red"}, "colour"),
        ({"order": "colour"}, "colour"),
        ({"limit": "many"}, "limit"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_api_bad_query_is_400_naming_the_clause(api_client: APIClient, params: dict[str, str], needle: str) -> None:
    response = api_client.get("/api/v1/offers/", params)
    assert response.status_code == 400
    assert needle in response.json()["detail"]


def test_limit_caps_results(market: dict[str, Any], api_client: APIClient) -> None:
    response = api_client.get("/api/v1/offers/", {"limit": "1"})
    assert [r["node_name"] for r in response.json()["results"]] == ["c-3090"]


def test_search_filters_in_the_database(market: dict[str, Any], django_assert_max_num_queries: Any) -> None:
    for i in range(30):
        node(name=f"bulk-{i}")
    with django_assert_max_num_queries(1):
        offer_search(q="gpu_ram>=24 num_gpus>=1 region in [eu,us] verified==true", order="-dlperf_per_dollar")


_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=80)
_query_like = st.lists(
    st.sampled_from(
        [
            *FIELDS,
            "<",
            ">=",
            "==",
            "!=",
            "in",
            "notin",
            "[",
            "]",
            ",",
            " ",
            "24",
            "0.5",
            "eu",
            "true",
            "abc",
            "1e30",
            "-3",
            '"',
            "%",
            "\\",
            "training",
        ]
    ),
    max_size=10,
).map("".join)


@settings(
    max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], deadline=None
)
@given(q=st.one_of(_text, _query_like), order=st.one_of(st.none(), _text, st.sampled_from([f"-{f}" for f in FIELDS])))
def test_fuzz_endpoint_never_500(market: dict[str, Any], api_client: APIClient, q: str, order: str | None) -> None:
    params = {"q": q} if order is None else {"q": q, "order": order}
    response = api_client.get("/api/v1/offers/", params)
    assert response.status_code in (200, 400), (q, order, response.content[:300])
