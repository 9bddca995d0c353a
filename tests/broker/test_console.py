"""Admin matching console (/console/): every page and action is staff only; pages render; htmx partials."""

from datetime import timedelta
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone

from broker.models import Job, JobState, LeaseState, MatchRound
from broker.services.matching import match_round_run, matching_pause_set
from broker.views.console_urls import urlpatterns
from marketplace.models import Customer
from tests.broker.booking_helpers import lease_on
from tests.factories import CustomerFactory, JobFactory, LenderFactory, NodeFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

ACTIONS = {
    "matching_pause",
    "matching_resume",
    "round_run",
    "job_assign",
    "node_verify",
    "node_deverify",
    "node_challenge",
    "node_cordon",
    "node_uncordon",
    "node_drain",
}
NAMES = [p.name for p in urlpatterns if isinstance(p, URLPattern) and p.name]


@pytest.fixture(autouse=True)
def _matching_running(settings: Any, tmp_path: Any) -> Any:
    settings.VAR_DIR = tmp_path  # a matcher file lock of our own (other test runs share var/)
    matching_pause_set(paused=False)
    yield
    matching_pause_set(paused=False)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cust(**kwargs: Any) -> Customer:
    return cast(Customer, CustomerFactory(**kwargs))


@pytest.fixture
def staff() -> Any:
    return UserFactory(is_staff=True)


@pytest.fixture
def staff_client(staff: User) -> Client:
    return logged_in(staff)


@pytest.fixture
def objects() -> dict[str, int]:
    """One of everything a console URL can point at."""
    node = NodeFactory(name="gpu-box-1")
    customer = cust()
    job = JobFactory(
        customer=customer, name="train", gpu_count=1, image="img", duration_seconds=3600, max_price_micros=5_000_000
    )
    rnd = MatchRound.objects.create(shard="default", started_at=timezone.now(), jobs_considered=1)
    return {"job_id": job.pk, "node_id": node.pk, "round_id": rnd.pk}


def url_for(name: str, objects: dict[str, int]) -> str:
    pattern = next(p for p in urlpatterns if isinstance(p, URLPattern) and p.name == name)
    kwargs = {key: objects[key] for key in pattern.pattern.converters}
    return reverse(f"console:{name}", kwargs=kwargs)


def test_every_url_is_listed_here() -> None:
    assert set(NAMES) >= ACTIONS
    assert len(NAMES) == len(set(NAMES)) >= 19


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("role", ["provider", "customer", "lender", "plain"])
def test_non_staff_get_403_on_every_page_and_action(name: str, role: str, objects: dict[str, int]) -> None:
    factory = {"provider": ProviderFactory, "customer": CustomerFactory, "lender": LenderFactory}
    user = factory[role]().user if role in factory else UserFactory()
    client = logged_in(user)
    url = url_for(name, objects)
    assert client.get(url).status_code == 403
    assert client.post(url, {"node": objects["node_id"], "override": "on", "reason": "x"}).status_code == 403
    # Nothing happened.
    assert Job.objects.get(pk=objects["job_id"]).state == JobState.PENDING
    assert MatchRound.objects.count() == 1


def test_non_staff_cannot_act_even_on_their_own_node(objects: dict[str, int]) -> None:
    node = NodeFactory(cordoned=False)
    client = logged_in(node.provider.user)
    for name in ("node_cordon", "node_verify", "node_drain"):
        assert client.post(reverse(f"console:{name}", args=[node.pk])).status_code == 403
    node.refresh_from_db()
    assert node.cordoned is False


@pytest.mark.parametrize("name", NAMES)
def test_anonymous_is_sent_to_login(client: Client, name: str, objects: dict[str, int]) -> None:
    url = url_for(name, objects)
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("name", sorted(set(NAMES) - ACTIONS))
def test_staff_pages_render(staff_client: Client, name: str, objects: dict[str, int]) -> None:
    lease_on(NodeFactory(name="busy"), CustomerFactory(), 2)
    response = staff_client.get(url_for(name, objects))
    assert response.status_code == 200
    assert b"<html" in response.content or name in {"queue_rows", "status", "supply_table", "rounds_table"}


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_actions_refuse_get(staff_client: Client, name: str, objects: dict[str, int]) -> None:
    assert staff_client.get(url_for(name, objects)).status_code == 405


def test_actions_need_csrf(staff: User, objects: dict[str, int]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(reverse("console:node_cordon", args=[objects["node_id"]]))
    assert response.status_code == 403
    assert NodeFactory._meta.model.objects.get(pk=objects["node_id"]).cordoned is False


def test_missing_objects_are_404(staff_client: Client) -> None:
    for name, kwargs in (
        ("job_detail", {"job_id": 999999}),
        ("node_detail", {"node_id": 999999}),
        ("round_detail", {"round_id": 999999}),
        ("node_cordon", {"node_id": 999999}),
        ("job_assign", {"job_id": 999999}),
    ):
        url = reverse(f"console:{name}", kwargs=kwargs)
        response = staff_client.post(url, {"node": 1}) if name in ACTIONS else staff_client.get(url)
        assert response.status_code == 404, name


# --------------------------------------------------------------------------- queue


def test_queue_shows_pending_jobs_with_age_and_explanation(staff_client: Client) -> None:
    customer = cust(company="Acme AI")
    job = JobFactory(
        customer=customer, name="needs-h100", gpu_count=8, image="img", duration_seconds=3600, regions=["eu"]
    )
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=42))
    match_round_run()  # no node at all: the round stores the reason
    matched = JobFactory(customer=customer, name="done", gpu_count=1, image="i", duration_seconds=60)
    Job.objects.filter(pk=matched.pk).update(state=JobState.MATCHED)
    html = staff_client.get("/console/").content.decode()
    assert f'id="queue-job-{job.pk}"' in html
    assert "No listed node has that many GPUs in one machine." in html
    assert "42\xa0minutes" in html
    assert f'id="queue-job-{matched.pk}"' not in html
    assert 'hx-get="/console/queue/rows/"' in html and "every 5s" in html


def test_queue_filters(staff_client: Client) -> None:
    a, b = cust(company="Acme AI"), cust(company="Beta Labs")
    old = JobFactory(customer=a, name="old-eu", gpu_count=1, image="i", duration_seconds=60, regions=["eu"])
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    spot = JobFactory(
        customer=b, name="spot-us", gpu_count=1, image="i", duration_seconds=60, regions=["us"], mode="interruptible"
    )
    anywhere = JobFactory(customer=b, name="anywhere", gpu_count=1, image="i", duration_seconds=60)
    running = JobFactory(customer=a, name="running", gpu_count=1, image="i", duration_seconds=60)
    Job.objects.filter(pk=running.pk).update(state=JobState.RUNNING)

    def shown(query: str) -> set[int]:
        html = staff_client.get(f"/console/queue/rows/?{query}").content.decode()
        return {j.pk for j in (old, spot, anywhere, running) if f'id="queue-job-{j.pk}"' in html}

    assert shown("") == {old.pk, spot.pk, anywhere.pk}
    assert shown("mode=interruptible") == {spot.pk}
    assert shown("region=eu") == {old.pk, anywhere.pk}
    assert shown("min_age=60") == {old.pk}
    assert shown("customer=beta") == {spot.pk, anywhere.pk}
    assert shown(f"customer={a.pk}") == {old.pk}
    assert shown("state=running") == {running.pk}
    assert shown("min_age=-5") == {old.pk, spot.pk, anywhere.pk}  # invalid filter ignored, not a 500


def test_status_partial_shows_pause_and_last_round(staff_client: Client) -> None:
    rnd = match_round_run()
    html = staff_client.get("/console/status/").content.decode()
    assert f"#{rnd.pk}</a>: placed 0 of 0" in html and "running" in html
    matching_pause_set(paused=True)
    assert 'id="matching-state">paused' in staff_client.get("/console/status/").content.decode()


# --------------------------------------------------------------------------- supply and rounds


def test_supply_by_tier_and_region_with_chart(staff_client: Client) -> None:
    eu = NodeFactory(region="eu", gpu_count=4)
    NodeFactory(region="eu", gpu_count=4, cordoned=True)
    NodeFactory(region="us", country="US", gpu_count=8, status="offline")
    lease_on(eu, CustomerFactory(), 3)
    html = staff_client.get("/console/supply/").content.decode()
    # eu: 2 online nodes, 8 GPUs online, 3 leased, 1 free to lease (cordoned node's 4 excluded), 37.5 %.
    assert "<td>eu</td>" in html and "2 / 2" in html and "37.5%" in html
    assert '<td class="num">3</td><td class="num">1</td>' in html
    assert "0 / 1" in html  # us: offline
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and "GPU utilisation by tier and region" in html
    partial = staff_client.get("/console/supply/table/").content.decode()
    assert partial.lstrip().startswith('<div id="supply"') and "37.5%" in partial


def test_rounds_page_timings_and_reasons_chart(staff_client: Client) -> None:
    NodeFactory(gpu_count=1, price_micros=3_000_000)
    customer = cust()
    JobFactory(customer=customer, name="cheap", gpu_count=1, image="i", duration_seconds=60, max_price_micros=1)
    JobFactory(customer=customer, name="big", gpu_count=8, image="i", duration_seconds=60)
    rnd = match_round_run()
    html = staff_client.get("/console/rounds/").content.decode()
    assert f'id="round-{rnd.pk}"' in html
    assert "Why jobs did not place" in html and "price" in html and "no_node_with_gpu_count" in html
    assert f"Round {rnd.pk}: time by phase" in html
    detail = staff_client.get(f"/console/rounds/{rnd.pk}/").content.decode()
    assert "Nodes meet the requirements but ask more than the price limit." in detail
    assert 'id="reasons-chart"' in detail


# --------------------------------------------------------------------------- job and node pages


def test_job_page_shows_requirements_timeline_leases_and_candidates(staff_client: Client) -> None:
    fits = NodeFactory(name="fits", region="eu", gpu_count=2)
    NodeFactory(name="wrong-region", region="us", country="US", gpu_count=2)
    job = JobFactory(
        customer=cust(),
        name="eu-only",
        gpu_count=2,
        image="img",
        duration_seconds=3600,
        regions=["eu"],
        max_price_micros=5_000_000,
    )
    html = staff_client.get(f"/console/jobs/{job.pk}/").content.decode()
    assert "Regions" in html and "<td>eu</td>" in html
    assert f'<option value="{fits.pk}">fits (#{fits.pk}) — fits: GPU slot(s) 0, 1' in html
    assert "violates: the node is not in one of the job&#x27;s regions" in html
    assert html.index("fits (#") < html.index("wrong-region (#")
    other = JobFactory(customer=cust(), name="ran", gpu_count=1, image="i", duration_seconds=60)
    lease = lease_on(fits, other.customer, 1, state=LeaseState.ACTIVE)
    html = staff_client.get(f"/console/jobs/{lease.job_id}/").content.decode()
    assert f"#{lease.pk}" in html and "Only pending jobs can be assigned." in html


def test_node_page_shows_agent_report_beside_registration(staff_client: Client) -> None:
    node = NodeFactory(
        gpu_count=4,
        agent_registered_at=timezone.now(),
        agent_report={"gpus": [{"name": "NVIDIA GeForce RTX 4090", "vram_gb": 24}] * 3},
        hardware_mismatch="registered 4× GeForce RTX 4090, agent sees 3× GeForce RTX 4090",
        benchmark_flag="measured 10 FP16 TFLOPS",
    )
    html = staff_client.get(f"/console/nodes/{node.pk}/").content.decode()
    assert 'id="node-comparison"' in html and "<td>GPU count</td><td>4</td>" in html and "<td>3</td>" in html
    assert "Hardware mismatch:" in html and "Benchmark flag:" in html
    listing = staff_client.get("/console/nodes/?mismatch=yes").content.decode()
    assert f'id="node-{node.pk}"' in listing and "mismatch" in listing and "flagged" in listing
    clean = staff_client.get("/console/nodes/?mismatch=no").content.decode()
    assert f'id="node-{node.pk}"' not in clean


def test_job_page_shows_the_matching_explanation(staff_client: Client) -> None:
    NodeFactory(name="dear", gpu_count=2, price_micros=2_450_000)
    job = JobFactory(
        customer=cust(), name="cheap", gpu_count=1, image="img", duration_seconds=3600, max_price_micros=2_000_000
    )
    html = staff_client.get(f"/console/jobs/{job.pk}/").content.decode()
    assert 'id="job-explanation"' in html
    assert "asks $2.45/GPU-hour; your max is $2.00/GPU-hour" in html
