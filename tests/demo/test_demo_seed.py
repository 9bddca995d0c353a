"""The demo market seed: idempotent, demo-only, verified listed nodes with recoverable demo agent tokens."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from rest_framework.test import APIClient

from billing.models import AccountKind, LedgerTransaction
from billing.selectors.ledger import ledger_verify
from billing.services.ledger import account_get
from broker.models import Job
from common.tokens import token_hash
from demo.seed import DEMO_PASSWORD, DEMO_WALLET_MICROS, NODES, demo_fleet, demo_node_token
from financing.models import AdvanceApplication, AdvanceStatus, ApplicationStatus
from financing.selectors.advances import applications_pending
from financing.selectors.demand import demand_open, demand_visible_to_provider
from financing.selectors.lenders import advances_offered_to_lender, lender_portfolio
from financing.services.demand import contract_demand_quote
from marketplace.models import Lender, Node, Region
from tests.factories import ProviderFactory

pytestmark = pytest.mark.django_db


def _snapshot() -> dict[str, Any]:
    customer = User.objects.get(username="demo-customer")
    return {
        "users": sorted(User.objects.values_list("username", "password", "is_staff")),
        "nodes": sorted(
            Node.objects.values_list("name", "gpu_model__slug", "gpu_count", "price_micros", "token_hash", "verified")
        ),
        "wallet": account_get(kind=AccountKind.CUSTOMER_WALLET, user=customer).balance,
        "jobs": Job.objects.count(),
        "transactions": LedgerTransaction.objects.count(),
        "applications": sorted(AdvanceApplication.objects.values_list("provider__username", "status")),
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
    call_command("seed_demo", "--no-history")
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
    call_command("seed_demo", "--no-history")
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
    call_command("seed_demo", "--force", "--no-history")
    assert Node.objects.count() == len(NODES)


@override_settings(DEV_MODE=True)
def test_the_demo_tells_the_financing_story() -> None:
    """Months of settled usage written through the real services in simulated time: demo-provider has a real offer
    from its mining farm's assessment, demo-lender has offers to fund and a repaying portfolio, staff have a queue,
    and a new provider can take open contract demand."""
    call_command("seed_demo")
    provider = User.objects.get(username="demo-provider")
    offer = AdvanceApplication.objects.get(provider=provider)
    assert offer.status == ApplicationStatus.OFFERED and offer.assessment is not None, offer.decline_reasons
    assert offer.principal_micros > 0 and offer.expected_payoff_months is not None
    assert offer.inputs["related_party_earnings"] == "$0.00"  # the demo labs are arm's-length customers
    assert offer in applications_pending()

    lender_user = User.objects.get(username="demo-lender")
    offered = list(advances_offered_to_lender(lender_user=lender_user))
    assert [a.provider.username for a in offered] == ["demo-provider-asia"]
    portfolio = lender_portfolio(lender_user=lender_user)
    assert portfolio["funded"] > 0 and 0 < portfolio["repaid"] < portfolio["funded"]
    assert [r["advance"].status for r in portfolio["rows"]] == [AdvanceStatus.ACTIVE]
    events = set(portfolio["rows"][0]["advance"].events.values_list("kind", flat=True))
    assert "progress_ok" in events and not events & {"shortfall", "delinquent", "collateral_offline"}, events

    newcomer = ProviderFactory().user
    demand = list(demand_visible_to_provider(provider_user=newcomer))
    assert len(demand) == demand_open().count() >= 1
    assert any(contract_demand_quote(provider_user=newcomer, demand=d).offered for d in demand)
    assert ledger_verify().ok

    client = Client()
    client.force_login(lender_user)
    page = client.get("/lender/").content.decode()
    assert "demo-provider-asia" in page or f"/lender/advances/{offered[0].pk}/" in page
    client.force_login(User.objects.get(username="admin"))
    assert (
        f"#{offer.pk}" in client.get("/console/financing/").content.decode()
        or str(offer.pk) in client.get("/console/financing/").content.decode()
    )
    client.force_login(provider)
    assert client.get(f"/provider/financing/applications/{offer.pk}/").status_code == 200
    client.force_login(newcomer)
    assert f"demand-{demand[0].pk}" in client.get("/provider/financing/").content.decode()
