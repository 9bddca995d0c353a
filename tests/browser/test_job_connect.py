"""The job page in Chromium: a job booked from the PyTorch-Jupyter template with SSH runs on a simulated node (the
real agent Runner over HTTP): the page shows pulling, then running with the connect block (SSH command with a copy
button, the Jupyter link) and the live log with the job's command, and ends with exit code 0; a job whose command
exits 3 ends failed with exit code 3."""

import re
import time
from datetime import timedelta
from typing import Any, cast

import pytest
from django.utils import timezone
from rigshift_agent.detect import simulate, simulated_challenge_tflops
from rigshift_agent.executor import SimulatedExecutor
from rigshift_agent.runner import Runner
from rigshift_agent.state import MemoryStore
from rigshift_client import ApiClient

from broker.models import Job, JobState
from broker.services.leases import lease_create
from broker.services.matching import matching_pause_set
from broker.services.ssh_keys import ssh_key_add
from marketplace.models import Customer, GPUModel
from marketplace.services.catalog import catalog_sync
from tests.broker.booking_helpers import fund
from tests.broker.test_agent_api import agent_node
from tests.broker.test_connect import ed25519_key
from tests.browser.conftest import login
from tests.factories import PASSWORD, CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class AgentClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(autouse=True)
def _market(settings: Any, tmp_path: Any) -> Any:
    settings.VAR_DIR = tmp_path
    catalog_sync()
    matching_pause_set(paused=True)  # the test places the jobs itself
    yield
    matching_pause_set(paused=False)


def _book(page: Any, *, name: str, template: str = "", image: str = "", command: str = "", hours: str = "1") -> Job:
    page.goto("/app/jobs/new/")
    page.fill("input[name=name]", name)
    page.fill("input[name=gpu_count]", "1")
    page.fill("input[name=max_price]", "1.00")
    page.fill("input[name=duration_hours]", hours)
    if template:
        page.select_option("select[name=template]", template)
    if image:
        page.fill("input[name=image]", image)
    if command:
        page.fill("[name=command]", command)
    assert "Not private from the provider" in page.inner_text("#booking-privacy")
    page.click("#book-button")
    page.wait_for_url(re.compile(r"/app/jobs/\d+/$"))
    return Job.objects.get(name=name)


def test_template_job_page_shows_phases_connect_live_log_and_exit_codes(
    page: Any, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, raw = agent_node(
        gpu_model=GPUModel.objects.get(slug="rtx-4090"),
        gpu_count=2,
        listed=True,
        verified=True,
        public_host="203.0.113.5",
        port_range_start=40020,
        port_range_end=40029,
    )
    customer = cast(Customer, CustomerFactory(user__username="nb-user"))
    fund(customer, 20)
    ssh_key_add(customer=customer, public_key=ed25519_key())
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, username="nb-user", password=PASSWORD)
    page.wait_for_selector("text=Log out nb-user")
    job = _book(page, name="notebook", template="pytorch-jupyter", hours="0.02")
    assert (job.template, job.ssh) == ("pytorch-jupyter", True)
    assert "provider's machine" in page.inner_text("#job-privacy")
    clock = AgentClock()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=clock.offset))  # one clock
    now = timezone.now()
    lease_create(
        job_id=job.pk,
        node_id=node.pk,
        gpu_slots=[0],
        price_micros=400_000,
        starts_at=now - timedelta(seconds=1),
        ends_at=now + timedelta(seconds=72),
    )
    agent = Runner(
        client=ApiClient(server=live_server.url, token=raw),
        hardware=simulate("2xRTX4090"),
        store=MemoryStore(),
        executor=SimulatedExecutor(clock=clock, pull_s=4, start_s=2),
        clock=clock,
        interval=15.0,
        simulated_tflops=simulated_challenge_tflops("2xRTX4090"),
    )
    agent.step()  # launched: pulling
    clock.offset += 1
    agent.step()
    page.wait_for_selector("#job-phase:has-text('Pulling image')")
    clock.offset += 10
    agent.step()  # running, ports reported, first log lines
    page.wait_for_selector("#job-state:has-text('Running')")
    assert page.inner_text("#connect-ssh") == "ssh -p 40021 root@203.0.113.5"
    assert page.inner_text("#connect-url-8888").startswith("http://203.0.113.5:40020/lab?token=")
    page.wait_for_selector("#job-log .log-line:has-text('$ pip install -q jupyterlab')")
    assert "Pulling" in page.inner_text("#job-timeline") and "Starting" in page.inner_text("#job-timeline")
    page.click("#copy-ssh")
    page.wait_for_selector("#copy-ssh:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == "ssh -p 40021 root@203.0.113.5"
    clock.offset += 70
    agent.step()
    agent.step()
    page.wait_for_selector("#job-state:has-text('Completed')")
    assert page.inner_text("#job-exit-code") == "0"
    page.wait_for_selector("#job-log .log-line:has-text('exited with code 0')")

    failing = _book(page, name="crashes", image="python:3.12", command="python train.py; exit 3")
    now = timezone.now()
    lease_create(
        job_id=failing.pk,
        node_id=node.pk,
        gpu_slots=[1],
        price_micros=400_000,
        starts_at=now - timedelta(seconds=1),
        ends_at=now + timedelta(hours=1),
    )
    for _ in range(4):
        agent.step()
        clock.offset += 15
    page.wait_for_selector("#job-state:has-text('Failed')", timeout=30_000)
    assert page.inner_text("#job-exit-code") == "3"
    page.reload()  # (the live log polls every 2 s; a fresh load reads it at once)
    page.wait_for_selector("#job-log .log-line:has-text('$ python train.py; exit 3')", timeout=30_000)
    assert Job.objects.get(pk=failing.pk).state == JobState.FAILED
