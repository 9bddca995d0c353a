"""The admin matching console in Chromium: staff see the queue with a pending job and its explanation,
run a round now and see the job matched, watch the queue refresh live, and cordon a node.
A provider gets 403."""

import re
from typing import Any, cast

import pytest

from broker.models import Job, JobState
from broker.services.matching import match_round_run, matching_pause_set
from common.models import AuditLog
from marketplace.models import Customer, Node
from tests.browser.conftest import login
from tests.factories import PASSWORD, CustomerFactory, JobFactory, NodeFactory, ProviderFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _own_matcher_lock(settings: Any, tmp_path: Any) -> Any:
    settings.VAR_DIR = tmp_path  # the live server thread reads the same settings
    matching_pause_set(paused=False)
    yield
    matching_pause_set(paused=False)


def test_staff_runs_a_round_and_cordons_a_node(page: Any) -> None:
    UserFactory(username="ops", is_staff=True)
    customer = cast(Customer, CustomerFactory(company="Ada Labs"))
    job = JobFactory(
        customer=customer, name="train-llm", gpu_count=2, image="img", duration_seconds=3600, max_price_micros=2_000_000
    )
    match_round_run()  # no node yet: the round stores why the job is not placed
    node = NodeFactory(name="eu-box", gpu_count=4, price_micros=900_000)

    login(page, username="ops", password=PASSWORD)
    page.goto("/console/")
    row = page.locator(f"#queue-job-{job.pk}")
    row.wait_for()
    assert "train-llm" in row.inner_text()
    assert "No listed node has that many GPUs in one machine." in row.inner_text()
    assert page.inner_text("#matching-state") == "running"

    # Run a round now: the message reports the placement and the queue no longer lists the job.
    page.click("#run-round")
    page.wait_for_selector(".messages:has-text('placed 1 of 1')")
    assert page.locator(f"#queue-job-{job.pk}").count() == 0
    page.goto(f"/console/jobs/{job.pk}/")
    assert page.inner_text("#job-state") == "Matched"
    assert "eu-box" in page.inner_text("#job-leases")

    # The queue refreshes by itself (htmx polling): a new booking appears without a reload.
    page.goto("/console/")
    late = JobFactory(customer=customer, name="late-arrival", gpu_count=1, image="img", duration_seconds=60)
    page.wait_for_selector(f"#queue-job-{late.pk}", timeout=15_000)

    # Cordon the node from its console page.
    page.goto("/console/nodes/")
    page.click("#node-table a:has-text('eu-box')")
    page.wait_for_url(re.compile(rf"/console/nodes/{node.pk}/$"))
    page.fill("#cordon-reason", "fan failure")
    page.click("#node-cordon")
    page.wait_for_selector("#node-cordoned")
    assert "no new leases" in page.inner_text(".messages")
    node.refresh_from_db()
    assert node.cordoned is True
    audit = AuditLog.objects.get(action="node.cordon")
    assert audit.actor is not None and audit.actor.username == "ops" and audit.details["reason"] == "fan failure"
    assert Job.objects.get(pk=job.pk).state == JobState.MATCHED  # its lease runs on
    assert Node.objects.filter(pk=node.pk, cordoned=True).exists()


def test_provider_gets_403_in_the_console(page: Any) -> None:
    provider = ProviderFactory()
    login(page, username=provider.user.username, password=PASSWORD)
    page.wait_for_url(re.compile(r"^(?!.*accounts/login).*$"))
    for path in ("/console/", "/console/nodes/", "/console/supply/", "/console/rounds/"):
        response = page.goto(path)
        assert response.status == 403, path
