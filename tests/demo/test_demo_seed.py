"""The demo market seed: idempotent, demo-only, verified listed nodes with recoverable demo agent tokens."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from rest_framework.test import APIClient

from billing.models import AccountKind
from billing.services.ledger import account_get
from common.tokens import token_hash
from demo.seed import DEMO_PASSWORD, DEMO_WALLET_MICROS, NODES, demo_fleet, demo_node_token
from marketplace.models import Lender, Node, Region

pytestmark = pytest.mark.django_db


def _snapshot() -> dict[str, Any]:
    customer = User.objects.get(username="demo-customer")
    return {
        "users": sorted(User.objects.values_list("username", "password", "is_staff")),
        "nodes": sorted(
            Node.objects.values_list("name", "gpu_model__slug", "gpu_count", "price_micros", "token_hash", "verified")
        ),
        "wallet": account_get(kind=AccountKind.CUSTOMER_WALLET, user=customer).balance,
    }


@override_settings(DEV_MODE=True)
def test_seed_creates_the_demo_market_and_a_second_run_changes_nothing() -> None:
    call_command("seed_demo")
    first = _snapshot()
    call_command("seed_demo")
    assert _snapshot() == first
    assert first["wallet"] == DEMO_WALLET_MICROS

    names = {u[0] for u in first["users"]}
    assert {"demo-provider", "demo-customer", "demo-lender", "admin"} <= names
    assert User.objects.get(username="admin").is_superuser
    assert Lender.objects.filter(user__username="demo-lender").exists()
    for username in ("demo-provider", "demo-customer", "demo-lender", "admin"):
        assert User.objects.get(username=username).check_password(DEMO_PASSWORD)

    nodes = Node.objects.filter(name__in=[n.name for n in NODES])
    assert 30 <= nodes.count() == len(NODES)
    assert all(n.verified and n.listed and n.price_micros > 0 and not n.hardware_mismatch for n in nodes)
    assert {n.region for n in nodes} >= {Region.US, Region.EU, Region.ASIA}
    slugs = {n.gpu_model.slug for n in nodes}
    assert {"rtx-4090", "rtx-3090", "a100-80gb", "h100-sxm", "l40s", "rtx-a6000"} <= slugs
    assert all(n.gpu_model.tier != "unsuitable" for n in nodes)
    assert nodes.exclude(provider__user__username="demo-provider").exists()  # a few other demo providers
    assert all(0.9 < n.reliability <= 1.0 for n in nodes)


@override_settings(DEV_MODE=True)
def test_demo_tokens_are_derived_and_stored_hashed_only() -> None:
    call_command("seed_demo")
    node = Node.objects.get(name="us-tx-4090-a")
    raw = demo_node_token(node_name=node.name)
    assert node.token_hash == token_hash(raw=raw)
    assert not Node.objects.filter(token_hash__startswith="rsn_").exists()
    fleet = demo_fleet()
    assert len(fleet) == len(NODES)
    entry = next(e for e in fleet if e["name"] == "us-tx-4090-a")
    assert (entry["token"], entry["profile"]) == (raw, "8xRTX4090")
    assert entry["state_file"].startswith(f"us-tx-4090-a-{node.pk}-")
    with override_settings(SECRET_KEY="another-secret-key-for-this-test-only-0123456789"):
        assert demo_node_token(node_name=node.name) != raw
        assert demo_fleet() == []  # tokens follow SECRET_KEY; a changed key starts no agent with stale tokens


@override_settings(DEV_MODE=True)
def test_a_demo_agent_token_authenticates_its_node() -> None:
    call_command("seed_demo")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {demo_node_token(node_name='eu-se-h100')}")
    response = client.get("/api/v1/agent/leases")
    assert response.status_code == 200
    assert response.json() == {"start": [], "stop": []}


@override_settings(DEV_MODE=False)
def test_seed_refuses_without_debug_unless_forced() -> None:
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not Node.objects.exists()
    call_command("seed_demo", "--force")
    assert Node.objects.count() == len(NODES)
