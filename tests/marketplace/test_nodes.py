"""Node registration, agent tokens and the listing: services and the provider API, including tenancy."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from common.errors import ValidationFailed
from common.tokens import token_hash
from marketplace.models import Node
from marketplace.services.nodes import node_register, node_token_revoke, node_token_rotate, node_update_listing
from tests.factories import GPUModelFactory, NodeFactory

pytestmark = pytest.mark.django_db

NODE = {
    "name": "rack1-box1",
    "region": "eu",
    "country": "DE",
    "gpu_model": "rtx-4090",
    "gpu_count": 8,
    "cpu_cores": 64,
    "ram_gb": 256,
    "disk_gb": 4000,
    "inet_down_mbps": 1000,
    "inet_up_mbps": 500,
    "price_per_gpu_hour": "0.45",
    "min_bid_per_gpu_hour": "0.25",
}


@pytest.fixture
def gpu(db):
    return GPUModelFactory()


def _register(provider, **overrides):
    kwargs = {
        "provider": provider,
        "name": "n1",
        "region": "eu",
        "country": "de",
        "gpu_model_slug": "rtx-4090",
        "gpu_count": 4,
        "price_micros": 450_000,
        "min_bid_micros": 250_000,
    }
    kwargs.update(overrides)
    return node_register(**kwargs)


# --- services -------------------------------------------------------------------------------------------------


def test_register_stores_only_the_token_hash(provider, gpu) -> None:
    node, raw = _register(provider)
    assert raw.startswith("rsn_") and len(raw) > 40
    node.refresh_from_db()
    assert node.token_hash == token_hash(raw=raw)
    assert node.token_prefix == raw[:12]
    assert node.token_revoked_at is None
    stored = [str(getattr(node, f.attname)) for f in Node._meta.concrete_fields]
    assert not any(raw in value for value in stored)
    assert node.country == "DE" and node.gpu_model == gpu and not node.verified


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"gpu_model_slug": "rtx-9999"}, "gpu_model"),
        ({"gpu_count": 0}, "gpu_count"),
        ({"gpu_count": 17}, "gpu_count"),
        ({"gpu_count": -1}, "gpu_count"),
        ({"price_micros": -1}, "price_per_gpu_hour"),
        ({"price_micros": 100_000_001}, "price_per_gpu_hour"),
        ({"min_bid_micros": 500_000}, "min_bid_per_gpu_hour"),
        ({"region": "mars"}, "region"),
        ({"country": "QQ"}, "country"),
        ({"name": "  "}, "name"),
        ({"cpu_cores": -4}, "cpu_cores"),
        ({"price_micros": 0, "min_bid_micros": 0, "listed": True}, "listed"),
    ],
)
def test_register_rejects_bad_input_without_writing(provider, gpu, overrides, field) -> None:
    with pytest.raises(ValidationFailed) as info:
        _register(provider, **overrides)
    assert field in info.value.details
    assert Node.objects.count() == 0


def test_register_unknown_model_message_says_unknown(provider, gpu) -> None:
    with pytest.raises(ValidationFailed, match="Unknown GPU model 'rtx-9999'"):
        _register(provider, gpu_model_slug="rtx-9999")


def test_register_duplicate_name_per_provider_only(provider, other_provider, gpu) -> None:
    _register(provider)
    with pytest.raises(ValidationFailed, match="already have a node"):
        _register(provider)
    _register(other_provider)  # another provider may use the same name
    assert Node.objects.count() == 2


def test_rotate_replaces_hash_and_clears_revocation(provider, gpu) -> None:
    node, old = _register(provider)
    node_token_revoke(node=node)
    new = node_token_rotate(node=node)
    node.refresh_from_db()
    assert new != old
    assert node.token_hash == token_hash(raw=new) != token_hash(raw=old)
    assert node.token_revoked_at is None
    assert not Node.objects.filter(token_hash=token_hash(raw=old)).exists()


def test_revoke_sets_revoked_at_once(provider, gpu) -> None:
    node, _ = _register(provider)
    node_token_revoke(node=node)
    first = Node.objects.get(pk=node.pk).token_revoked_at
    assert first is not None
    node_token_revoke(node=node)
    assert Node.objects.get(pk=node.pk).token_revoked_at == first


def test_update_listing_saves_and_validates() -> None:
    node = NodeFactory(price_micros=400_000, min_bid_micros=100_000, listed=False)
    start = timezone.now()
    node_update_listing(
        node=node,
        price_micros=2_450_000,
        min_bid_micros=1_000_000,
        available_from=start,
        available_until=start + timedelta(days=7),
        listed=True,
    )
    node.refresh_from_db()
    assert (node.price_micros, node.min_bid_micros, node.listed) == (2_450_000, 1_000_000, True)
    assert node.available_until - node.available_from == timedelta(days=7)

    bad: list[dict[str, Any]] = [
        {"min_bid_micros": 3_000_000},  # bid above price
        {"price_micros": -1},
        {"min_bid_micros": -1},
        {"available_from": start, "available_until": start},  # from must be before until
        {"available_from": start, "available_until": start - timedelta(hours=1)},
        {"price_micros": 0, "min_bid_micros": 0, "listed": True},
    ]
    base: dict[str, Any] = {
        "price_micros": 2_450_000,
        "min_bid_micros": 1_000_000,
        "available_from": None,
        "available_until": None,
        "listed": True,
    }
    for overrides in bad:
        with pytest.raises(ValidationFailed):
            node_update_listing(node=node, **{**base, **overrides})
    node.refresh_from_db()
    assert (node.price_micros, node.min_bid_micros) == (2_450_000, 1_000_000)


# --- API ------------------------------------------------------------------------------------------------------


def test_api_register_returns_token_once_and_command(provider_client, provider, gpu) -> None:
    response = provider_client.post("/api/v1/nodes/", NODE, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    token = body["agent_token"]
    assert token.startswith("rsn_")
    assert body["agent_command"] == f".venv/bin/rigshift-agent run --server http://testserver/ --token {token}"
    assert body["price_per_gpu_hour"] == "0.450000"
    assert body["min_bid_per_gpu_hour"] == "0.250000"
    assert body["gpu_model"] == "rtx-4090" and body["gpu_count"] == 8
    assert response["Cache-Control"] == "no-store"
    node = Node.objects.get(pk=body["id"])
    assert node.provider == provider and node.token_hash == token_hash(raw=token)
    # never again: neither the detail nor the list shows the raw token
    detail = provider_client.get(f"/api/v1/nodes/{node.pk}/").json()
    listing = provider_client.get("/api/v1/nodes/").json()
    assert "agent_token" not in detail and token not in str(detail) and token not in str(listing)
    assert detail["token_prefix"] == token[:12]
    assert listing["count"] == 1 and listing["results"][0]["id"] == node.pk


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"gpu_model": "rtx-9999"}, "Unknown GPU model"),
        ({"gpu_count": -2}, "gpu_count"),
        ({"gpu_count": 17}, "gpu_count"),
        ({"price_per_gpu_hour": "-1.00"}, "price_per_gpu_hour"),
        ({"price_per_gpu_hour": "100.01"}, "price_per_gpu_hour"),
        ({"price_per_gpu_hour": "abc"}, "price_per_gpu_hour"),
        ({"min_bid_per_gpu_hour": "0.50"}, "interruptible bid"),
        ({"country": "XX"}, "ISO 3166-1"),
        ({"region": "moon"}, "region"),
    ],
)
def test_api_register_bad_input_is_400(provider_client, gpu, overrides, fragment) -> None:
    response = provider_client.post("/api/v1/nodes/", {**NODE, **overrides}, format="json")
    assert response.status_code == 400, response.json()
    assert fragment in response.json()["detail"]
    assert Node.objects.count() == 0


def test_api_patch_listing(provider_client, provider) -> None:
    node = NodeFactory(provider=provider, price_micros=400_000, min_bid_micros=100_000)
    url = f"/api/v1/nodes/{node.pk}/"
    response = provider_client.patch(url, {"price_per_gpu_hour": "2.45"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["price_per_gpu_hour"] == "2.450000"
    assert response.json()["min_bid_per_gpu_hour"] == "0.100000"  # untouched
    window = {"available_from": "2030-01-01T00:00:00Z", "available_until": "2030-02-01T00:00:00Z", "listed": False}
    response = provider_client.patch(url, window, format="json")
    assert response.status_code == 200
    node.refresh_from_db()
    assert node.price_micros == 2_450_000 and not node.listed
    assert node.available_from.year == 2030 and node.available_until.month == 2

    for bad in (
        {"min_bid_per_gpu_hour": "3"},
        {"price_per_gpu_hour": "-0.01"},
        {"available_until": "2029-12-31T00:00:00Z"},
        {"listed": "maybe"},
    ):
        response = provider_client.patch(url, bad, format="json")
        assert response.status_code == 400, (bad, response.json())
    node.refresh_from_db()
    assert node.price_micros == 2_450_000 and node.available_until.year == 2030


def test_api_rotate_and_revoke(provider_client, provider, gpu) -> None:
    created = provider_client.post("/api/v1/nodes/", NODE, format="json").json()
    old = created["agent_token"]
    rotated = provider_client.post(f"/api/v1/nodes/{created['id']}/token/rotate/")
    assert rotated.status_code == 200
    new = rotated.json()["agent_token"]
    assert new != old and rotated.json()["agent_command"].endswith(new)
    node = Node.objects.get(pk=created["id"])
    assert node.token_hash == token_hash(raw=new)
    revoked = provider_client.post(f"/api/v1/nodes/{created['id']}/token/revoke/")
    assert revoked.status_code == 200 and revoked.json()["token_revoked"] is True
    node.refresh_from_db()
    assert node.token_revoked_at is not None
    assert provider_client.get(f"/api/v1/nodes/{node.pk}/").json()["token_revoked"] is True


# --- tenancy and roles ----------------------------------------------------------------------------------------


def test_other_provider_cannot_read_or_change_nodes_or_tokens(provider, other_provider_client) -> None:
    node = NodeFactory(provider=provider, price_micros=400_000)
    before = (node.token_hash, node.token_revoked_at, node.price_micros)
    base = f"/api/v1/nodes/{node.pk}/"
    assert other_provider_client.get(base).status_code == 404
    assert other_provider_client.patch(base, {"price_per_gpu_hour": "9"}, format="json").status_code == 404
    assert other_provider_client.post(base + "token/rotate/").status_code == 404
    assert other_provider_client.post(base + "token/revoke/").status_code == 404
    assert other_provider_client.get("/api/v1/nodes/").json()["count"] == 0
    node.refresh_from_db()
    assert (node.token_hash, node.token_revoked_at, node.price_micros) == before


def test_customer_gets_403_and_anonymous_401(customer_client, api_client, provider) -> None:
    node = NodeFactory(provider=provider)
    for client, expected in ((customer_client, 403), (api_client, 401)):
        assert client.get("/api/v1/nodes/").status_code == expected
        assert client.post("/api/v1/nodes/", NODE, format="json").status_code == expected
        assert client.get(f"/api/v1/nodes/{node.pk}/").status_code == expected
        assert client.patch(f"/api/v1/nodes/{node.pk}/", {"listed": False}, format="json").status_code == expected
        assert client.post(f"/api/v1/nodes/{node.pk}/token/rotate/").status_code == expected
        assert client.post(f"/api/v1/nodes/{node.pk}/token/revoke/").status_code == expected


def test_schema_documents_node_endpoints(api_client) -> None:
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/nodes/", "/api/v1/nodes/{node_id}/", "/api/v1/providers/signup/"):
        assert path in paths
    assert "agent_token" in str(response.json()["components"]["schemas"]["NodeCreateOutput"])


# --- registration vs agent report -----------------------------------------------------------------------------


def test_spec_comparison_before_and_after_the_agent_reports() -> None:
    from marketplace.selectors.nodes import node_spec_comparison

    node = NodeFactory(gpu_count=4, agent_report={})
    rows = {row.label: row for row in node_spec_comparison(node=node)}
    assert rows["GPU count"].reported is None and rows["GPU count"].matches is None

    node.agent_report = {"gpus": [{"index": i, "name": "NVIDIA GeForce RTX 4090", "vram_gb": 23.9} for i in range(4)]}
    rows = {row.label: row for row in node_spec_comparison(node=node)}
    assert rows["GPU model"].matches is True and rows["GPU count"].matches is True
    assert rows["VRAM per GPU (GB)"].matches is True

    node.agent_report = {
        "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3060", "vram_gb": 12}]
        + [{"index": i, "name": "NVIDIA GeForce RTX 4090", "vram_gb": 24} for i in range(1, 3)]
    }
    rows = {row.label: row for row in node_spec_comparison(node=node)}
    assert rows["GPU model"].matches is False and rows["GPU count"].matches is False
    assert rows["GPU count"].reported == "3" and "1× NVIDIA GeForce RTX 3060" in str(rows["GPU model"].reported)
    assert rows["VRAM per GPU (GB)"].matches is False


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_with_one_name_give_one_node_and_a_clear_error() -> None:
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    from tests.factories import ProviderFactory

    GPUModelFactory()
    provider: Any = ProviderFactory()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def register() -> None:
        try:
            barrier.wait()
            _register(provider, name="race")
            outcomes.append("ok")
        except ValidationFailed as exc:
            outcomes.append(exc.message)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 1
    assert all("already have a node" in o for o in outcomes if o != "ok")
    assert Node.objects.filter(provider=provider, name="race").count() == 1


def test_tokens_work_against_the_agent_api_and_stop_after_rotate_or_revoke(provider_client, gpu) -> None:
    from rest_framework.test import APIClient

    def agent_status(token: str) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client.get("/api/v1/agent/leases").status_code

    created = provider_client.post("/api/v1/nodes/", NODE, format="json").json()
    first = created["agent_token"]
    assert agent_status(first) == 200
    second = provider_client.post(f"/api/v1/nodes/{created['id']}/token/rotate/").json()["agent_token"]
    assert agent_status(first) == 401
    assert agent_status(second) == 200
    provider_client.post(f"/api/v1/nodes/{created['id']}/token/revoke/")
    assert agent_status(second) == 401
    third = provider_client.post(f"/api/v1/nodes/{created['id']}/token/rotate/").json()["agent_token"]
    assert agent_status(third) == 200
