"""Provider portal pages: signup, dashboard and checklist, node registration, node page, payout account."""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from common.tokens import token_hash
from marketplace.models import FleetAssessment, Node, NodeStatus, Provider
from marketplace.selectors.onboarding import onboarding_checklist
from tests.factories import CustomerFactory, GPUModelFactory, NodeFactory, ProviderFactory

pytestmark = pytest.mark.django_db

SIGNUP = {
    "username": "pagepat",
    "password": "long-enough-secret-42",
    "email": "pat@hashfarm.example",
    "company": "Page Hashfarm",
    "contact_name": "Pat Miner",
    "country": "NL",
    "payout_currency": "EUR",
}

NODE_FORM = {
    "name": "rig-a",
    "region": "eu",
    "country": "NL",
    "gpu_model": "rtx-4090",
    "gpu_count": "6",
    "cpu_cores": "32",
    "ram_gb": "128",
    "disk_gb": "2000",
    "inet_down_mbps": "1000",
    "inet_up_mbps": "500",
    "price_per_gpu_hour": "0.42",
    "min_bid_per_gpu_hour": "0.20",
    "listed": "on",
}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def provider_page(provider) -> Client:
    return logged_in(provider.user)


# --- signup ---------------------------------------------------------------------------------------------------


def test_signup_page_creates_provider_logs_in_and_redirects(client) -> None:
    assert client.get("/provider/signup/").status_code == 200
    response = client.post("/provider/signup/", SIGNUP)
    assert response.status_code == 302 and response["Location"] == "/provider/"
    provider = Provider.objects.get(user__username="pagepat")
    assert (provider.country, provider.payout_currency) == ("NL", "EUR")
    dashboard = client.get("/provider/")
    assert dashboard.status_code == 200
    assert "Page Hashfarm" in dashboard.content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"country": "XX"}, "Select a valid choice"),
        ({"password": "short"}, "too short"),
        ({"payout_currency": "DOGE"}, "Select a valid choice"),
    ],
)
def test_signup_page_shows_errors_and_writes_nothing(client, overrides, message) -> None:
    response = client.post("/provider/signup/", {**SIGNUP, **overrides})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Provider.objects.exists()


def test_signup_page_duplicate_username(client, provider) -> None:
    response = client.post("/provider/signup/", {**SIGNUP, "username": provider.user.username})
    assert response.status_code == 200
    assert "already taken" in response.content.decode()
    assert Provider.objects.count() == 1


def test_signup_page_uses_csrf() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/provider/signup/", SIGNUP).status_code == 403
    page = client.get("/provider/signup/")
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()


# --- roles ----------------------------------------------------------------------------------------------------

PAGES = ["/provider/", "/provider/nodes/new/", "/provider/nodes/table/", "/provider/payout-account/"]


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_redirected_to_login(client, url) -> None:
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", PAGES)
def test_customer_gets_403(url) -> None:
    assert logged_in(CustomerFactory().user).get(url).status_code == 403


def test_customer_gets_403_on_node_pages_and_actions(provider) -> None:
    node = NodeFactory(provider=provider)
    client = logged_in(CustomerFactory().user)
    assert client.get(f"/provider/nodes/{node.pk}/").status_code == 403
    assert client.post(f"/provider/nodes/{node.pk}/token/rotate/").status_code == 403
    assert client.post(f"/provider/nodes/{node.pk}/token/revoke/").status_code == 403


def test_other_provider_gets_404_and_changes_nothing(provider, other_provider) -> None:
    node: Any = NodeFactory(provider=provider, price_micros=400_000, min_bid_micros=0)
    before = (node.token_hash, node.token_revoked_at, node.price_micros)
    client = logged_in(other_provider.user)
    assert client.get(f"/provider/nodes/{node.pk}/").status_code == 404
    listing = {"price_per_gpu_hour": "9", "min_bid_per_gpu_hour": "0", "listed": "on"}
    assert client.post(f"/provider/nodes/{node.pk}/", listing).status_code == 404
    assert client.post(f"/provider/nodes/{node.pk}/token/rotate/").status_code == 404
    assert client.post(f"/provider/nodes/{node.pk}/token/revoke/").status_code == 404
    assert node.name not in client.get("/provider/").content.decode()
    node.refresh_from_db()
    assert (node.token_hash, node.token_revoked_at, node.price_micros) == before


# --- node registration and the one-time token -----------------------------------------------------------------


def test_register_node_page_shows_token_and_command_once(provider, provider_page) -> None:
    GPUModelFactory()
    form = provider_page.get("/provider/nodes/new/")
    assert form.status_code == 200 and "rtx-4090" in form.content.decode()
    response = provider_page.post("/provider/nodes/new/", NODE_FORM)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    token = re.search(r"rsn_[A-Za-z0-9_\-]+", html).group(0)
    assert f".venv/bin/rigshift-agent run --server http://testserver/ --token {token}" in html
    node = Node.objects.get(provider=provider, name="rig-a")
    assert node.token_hash == token_hash(raw=token)
    assert (node.gpu_count, node.price_micros, node.min_bid_micros, node.listed) == (6, 420_000, 200_000, True)
    # the token is never shown again
    for url in ("/provider/", f"/provider/nodes/{node.pk}/", "/provider/nodes/table/"):
        page = provider_page.get(url).content.decode()
        assert token not in page
    assert token[:12] in provider_page.get(f"/provider/nodes/{node.pk}/").content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gpu_model": "rtx-9999"}, "Select a valid choice"),
        ({"gpu_count": "0"}, "greater than or equal to 1"),
        ({"gpu_count": "17"}, "less than or equal to 16"),
        ({"price_per_gpu_hour": "-1"}, "greater than or equal to 0"),
        ({"min_bid_per_gpu_hour": "0.50"}, "cannot exceed"),
    ],
)
def test_register_node_page_bad_input(provider_page, overrides, message) -> None:
    GPUModelFactory()
    response = provider_page.post("/provider/nodes/new/", {**NODE_FORM, **overrides})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Node.objects.exists()


def test_register_node_page_duplicate_name(provider, provider_page) -> None:
    NodeFactory(provider=provider, name="rig-a")
    response = provider_page.post("/provider/nodes/new/", NODE_FORM)
    assert "already have a node" in response.content.decode()
    assert Node.objects.count() == 1


def test_rotate_and_revoke_pages(provider, provider_page) -> None:
    node = NodeFactory(provider=provider, token_hash="x" * 64, token_prefix="rsn_old")
    assert provider_page.get(f"/provider/nodes/{node.pk}/token/rotate/").status_code == 405  # POST only
    response = provider_page.post(f"/provider/nodes/{node.pk}/token/rotate/")
    assert response.status_code == 200
    token = re.search(r"rsn_[A-Za-z0-9_\-]{20,}", response.content.decode()).group(0)
    assert "previous token has stopped working" in response.content.decode()
    node.refresh_from_db()
    assert node.token_hash == token_hash(raw=token)
    response = provider_page.post(f"/provider/nodes/{node.pk}/token/revoke/")
    assert response.status_code == 302
    node.refresh_from_db()
    assert node.token_revoked_at is not None
    assert "revoked" in provider_page.get(f"/provider/nodes/{node.pk}/").content.decode()


# --- node page and listing edit -------------------------------------------------------------------------------


def test_node_page_edit_listing(provider, provider_page) -> None:
    node = NodeFactory(provider=provider, price_micros=400_000, min_bid_micros=200_000, listed=False)
    page = provider_page.get(f"/provider/nodes/{node.pk}/")
    assert page.status_code == 200 and 'value="0.40"' in page.content.decode()
    data = {
        "price_per_gpu_hour": "2.45",
        "min_bid_per_gpu_hour": "1.10",
        "available_from": "2030-01-01T08:00",
        "available_until": "2030-01-31T20:00",
        "listed": "on",
    }
    response = provider_page.post(f"/provider/nodes/{node.pk}/", data)
    assert response.status_code == 302
    node.refresh_from_db()
    assert (node.price_micros, node.min_bid_micros, node.listed) == (2_450_000, 1_100_000, True)
    assert node.available_from.isoformat().startswith("2030-01-01T08:00")
    assert "$2.45" in provider_page.get("/provider/").content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_bid_per_gpu_hour": "3.00"}, "cannot exceed"),
        ({"price_per_gpu_hour": "-1"}, "greater than or equal to 0"),
        ({"price_per_gpu_hour": "101"}, "less than or equal to 100"),
        ({"available_from": "2030-02-01T00:00", "available_until": "2030-01-01T00:00"}, "must be after its start"),
        ({"price_per_gpu_hour": "0", "min_bid_per_gpu_hour": "0"}, "before listing"),
    ],
)
def test_node_page_listing_validation(provider, provider_page, overrides, message) -> None:
    node = NodeFactory(provider=provider, price_micros=400_000, min_bid_micros=200_000)
    data = {"price_per_gpu_hour": "2.45", "min_bid_per_gpu_hour": "1.10", "listed": "on", **overrides}
    response = provider_page.post(f"/provider/nodes/{node.pk}/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    node.refresh_from_db()
    assert node.price_micros == 400_000


def test_node_page_shows_mismatch_and_agent_report(provider, provider_page) -> None:
    node = NodeFactory(
        provider=provider,
        gpu_count=8,
        hardware_mismatch="registered 8× GeForce RTX 4090, agent sees 6",
        agent_report={
            "gpus": [{"index": i, "name": "NVIDIA GeForce RTX 4090", "vram_gb": 23.6} for i in range(6)],
            "cpu_cores": 32,
            "driver_version": "550.54",
        },
        verified=False,
    )
    html = provider_page.get(f"/provider/nodes/{node.pk}/").content.decode()
    assert "Hardware mismatch" in html and "agent sees 6" in html
    assert "6× NVIDIA GeForce RTX 4090" in html and "550.54" in html
    comparison = re.search(r"<td>GPU count</td><td>8</td>\s*<td>6</td>\s*<td>(.*?)</td>", html, re.S)
    assert comparison and "differs" in comparison.group(1)
    model_row = re.search(r"<td>GPU model</td>.*?</tr>", html, re.S)
    assert model_row and "✔" in model_row.group(0)  # the model is right, only the count differs
    dashboard = provider_page.get("/provider/").content.decode()
    assert "Hardware mismatch on" in dashboard and "agent sees 6" in dashboard


# --- dashboard and checklist ----------------------------------------------------------------------------------


def test_dashboard_node_list_shows_status_heartbeat_reliability_price(provider, provider_page) -> None:
    NodeFactory(
        provider=provider,
        name="rig-b",
        gpu_count=4,
        reliability=0.9912,
        price_micros=2_450_000,
        last_heartbeat_at=timezone.now() - timedelta(seconds=30),
        verified=True,
    )
    html = provider_page.get("/provider/").content.decode()
    assert "rig-b" in html and "99.1%" in html and "$2.45" in html
    assert "× 4" in html and "seconds ago" in html and "verified" in html and "Online" in html


def step_states(provider) -> dict[str, bool]:
    return {step.key: step.done for step in onboarding_checklist(provider=provider)}


def test_checklist_progresses_through_all_steps() -> None:
    provider: Any = ProviderFactory()
    assert step_states(provider) == dict.fromkeys(
        ["assess", "register", "online", "verified", "listed", "payout"], False
    )
    FleetAssessment.objects.create(provider=provider, utilisation="0.6")
    assert step_states(provider)["assess"]
    node = NodeFactory(provider=provider, status=NodeStatus.REGISTERED, verified=False, listed=False, price_micros=0)
    states = step_states(provider)
    assert states["register"] and not states["online"] and not states["verified"] and not states["listed"]
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.ONLINE, agent_registered_at=timezone.now())
    assert step_states(provider)["online"]
    Node.objects.filter(pk=node.pk).update(verified=True)
    assert step_states(provider)["verified"]
    Node.objects.filter(pk=node.pk).update(listed=True)
    assert not step_states(provider)["listed"]  # listed at $0 does not count
    Node.objects.filter(pk=node.pk).update(price_micros=500_000)
    assert step_states(provider)["listed"]
    Provider.objects.filter(pk=provider.pk).update(payout_account_ready=True)
    provider.refresh_from_db()
    assert all(step_states(provider).values())


def test_checklist_links_point_to_the_node_needing_work(provider) -> None:
    done = NodeFactory(provider=provider, verified=True)
    todo = NodeFactory(provider=provider, verified=False)
    steps = {step.key: step for step in onboarding_checklist(provider=provider)}
    assert steps["verified"].url == f"/provider/nodes/{todo.pk}/"
    assert steps["online"].url == f"/provider/nodes/{done.pk}/"  # all online: first node
    assert steps["register"].url == "/provider/nodes/new/"
    assert steps["payout"].url == "/provider/payout-account/"


def test_dashboard_shows_checklist_states(provider, provider_page) -> None:
    html = provider_page.get("/provider/").content.decode()
    assert 'data-step="register"' in html and "0 of 6 done" in html
    NodeFactory(provider=provider)
    html = provider_page.get("/provider/").content.decode()
    assert re.search(r'class="done" data-step="register"', html)


def test_payout_account_page(provider, provider_page) -> None:
    assert provider_page.get("/provider/payout-account/").status_code == 200
    response = provider_page.post("/provider/payout-account/")
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.payout_account_ready
    assert "connected" in provider_page.get("/provider/payout-account/").content.decode()
