"""The whole product in Chromium, end to end: a provider signs up, assesses its fleet and registers a node; the
real `rigshift-agent` Runner (simulate mode, over HTTP with the node token read from the page) brings it online;
staff verify it in the console; a customer signs up, tops up, books, and watches the job run; the agent reports
usage; staff see the running lease in the console; the customer's statement shows the usage."""

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone
from rigshift_agent.detect import simulate, simulated_benchmark, simulated_challenge_tflops
from rigshift_agent.executor import SimulatedExecutor
from rigshift_agent.runner import Runner
from rigshift_agent.state import MemoryStore
from rigshift_client import ApiClient

from billing.models import Settlement
from billing.tasks import settle_usage
from broker.models import Job, JobState, Lease, LeaseState
from broker.services.matching import matching_pause_set
from marketplace.models import Node
from marketplace.services.catalog import catalog_sync
from tests.browser.conftest import login
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _market(settings: Any, tmp_path: Any) -> Any:
    settings.VAR_DIR = tmp_path  # own matcher lock and pause flag, shared with the live server thread
    catalog_sync()
    matching_pause_set(paused=False)
    yield
    matching_pause_set(paused=False)


class AgentClock:
    """The time when it was made plus an offset the test moves forward, so the simulated workload 'runs' without
    waiting. The live server (same process) reads the same clock: the broker meters by its own clock and refuses
    usage reported for the future."""

    def __init__(self, monkeypatch: Any) -> None:
        self.start, self.offset = time.time(), 0.0
        monkeypatch.setattr(timezone, "now", lambda: datetime.fromtimestamp(self(), UTC))

    def __call__(self) -> float:
        return self.start + self.offset


def _logout(page: Any, username: str) -> None:
    page.click(f"text=Log out {username}")
    page.wait_for_selector(f"text=Log out {username}", state="detached")


def test_provider_agent_staff_customer_invoice(page: Any, live_server: Any, monkeypatch: Any) -> None:
    started = time.monotonic()
    UserFactory(username="ops", is_staff=True)

    # 1. Provider: sign up, assess the fleet (mostly mining cards), register the one AI-grade box.
    page.goto("/provider/signup/")
    page.fill("input[name=username]", "e2e-miner")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=email]", "miner@example.com")
    page.fill("input[name=company]", "E2E Hashfarm")
    page.fill("input[name=contact_name]", "Pat Miner")
    page.select_option("select[name=country]", "SE")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/provider/$"))

    page.goto("/provider/assessments/new/")
    page.fill("textarea[name=text]", "RX580 8GB,48\nGTX 1070,16\nRTX 4090,2\n")
    page.click("button:has-text('Assess my fleet')")
    page.wait_for_url("**/provider/assessments/*/")
    assert "2 of 66 GPUs" in page.locator("#qualifying-share").inner_text()

    page.goto("/provider/nodes/new/")
    page.fill("input[name=name]", "rig-4090")
    page.select_option("select[name=region]", "eu")
    page.select_option("select[name=gpu_model]", "rtx-4090")
    page.fill("input[name=gpu_count]", "2")
    page.fill("input[name=price_per_gpu_hour]", "0.50")
    page.fill("input[name=min_bid_per_gpu_hour]", "0.30")
    page.click("main button[type=submit]")
    page.wait_for_selector("#agent-token")
    token = page.locator("#agent-token").inner_text().strip()
    assert token.startswith("rsn_")
    node = Node.objects.get(name="rig-4090")
    page.click("text=Go to the node page")
    page.wait_for_url(re.compile(rf"/provider/nodes/{node.pk}/$"))
    page.check("input[name=listed]")
    page.click("text=Save listing")
    page.wait_for_selector("text=Listing for rig-4090 saved.")

    # 2. The node's agent: the real Runner in simulate mode, over HTTP against the live server.
    clock = AgentClock(monkeypatch)
    runner = Runner(
        client=ApiClient(server=live_server.url, token=token),
        hardware=simulate("2xRTX4090"),
        store=MemoryStore(),
        executor=SimulatedExecutor(clock=clock),
        benchmark=simulated_benchmark("2xRTX4090"),
        clock=clock,
        interval=15.0,
        name="e2e-agent",
        simulated_tflops=simulated_challenge_tflops("2xRTX4090"),  # answers the compute challenge as that card
    )
    runner.step()  # register + heartbeat + lease fetch
    node.refresh_from_db()
    assert node.status == "online" and not node.hardware_mismatch and node.agent_registered_at is not None

    # 3. Staff verify the node in the console.
    _logout(page, "e2e-miner")
    login(page, username="ops", password=PASSWORD)
    page.wait_for_selector("text=Log out ops")
    page.goto(f"/console/nodes/{node.pk}/")
    assert "not verified" in page.inner_text("#node-verified")
    page.click("#node-verify")
    page.wait_for_selector("#node-verified:has-text('verified'):not(:has-text('not'))")
    node.refresh_from_db()
    assert node.verified
    _logout(page, "ops")

    # 4. Customer: sign up, top up, book; the booking triggers a matching round that places the job.
    page.goto("/app/signup/")
    page.fill("input[name=username]", "e2e-ada")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=company]", "Ada Labs")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/app/$"))
    page.click(".subnav >> text=Wallet")
    page.fill("input[name=amount]", "20")
    page.click("form[action='/app/wallet/'] button[type=submit]")
    page.wait_for_selector("#wallet-available:has-text('$20.00')")
    page.goto("/app/jobs/new/")
    page.fill("input[name=name]", "e2e-finetune")
    page.fill("input[name=gpu_count]", "2")
    page.fill("input[name=max_price]", "1.00")
    page.fill("input[name=duration_hours]", "1")
    page.wait_for_selector("#quote-max-cost:has-text('$2.00')")
    page.click("#book-button")
    page.wait_for_url(re.compile(r"/app/jobs/\d+/$"))
    job = Job.objects.get(name="e2e-finetune")
    page.wait_for_selector("#job-state:has-text('Matched')")
    lease = Lease.objects.get(job=job)
    assert lease.node_id == node.pk and lease.price_micros == 500_000

    # 5. The agent picks the lease up, runs it, and heartbeats with its usage for ten minutes on both GPUs. The
    # broker bills what it observed: from the first report (activation) to the last heartbeat, × 2 GPUs.
    runner.step()  # fetches and starts the lease
    assert str(lease.pk) in runner.state.leases
    clock.offset += 15
    runner.step()  # heartbeat with the lease's usage: the lease becomes active, the job running
    lease.refresh_from_db()
    assert lease.state == LeaseState.ACTIVE
    for _ in range(40):  # ten minutes of heartbeats, 15 s apart
        clock.offset += 15
        runner.step()
    page.wait_for_selector("#job-state:has-text('Running')", timeout=15_000)  # the status part polls (htmx)

    # 6. Settlement runs (the beat task), then staff see the running lease in the console.
    settle_usage.delay()
    charged = sum(Settlement.objects.values_list("charged_micros", flat=True))
    assert charged == 500_000 * 2 * 600 // 3600  # $0.50/GPU-hour × 2 GPUs × 600 s
    _logout(page, "e2e-ada")
    login(page, username="ops", password=PASSWORD)
    page.wait_for_selector("text=Log out ops")
    page.goto(f"/console/jobs/{job.pk}/")
    assert page.inner_text("#job-state") == "Running"
    assert "rig-4090" in page.inner_text("#job-leases")
    page.goto(f"/console/nodes/{node.pk}/")
    assert "Online" in page.inner_text("h1")
    _logout(page, "ops")

    # 7. The customer's statement of the month so far shows the metered usage.
    clock.offset += 60  # a minute later (the test's clock stands still between its steps)
    login(page, username="e2e-ada", password=PASSWORD)
    page.wait_for_selector("text=Log out e2e-ada")
    page.goto("/app/invoices/")
    page.click("text=Create a statement of this month to date")
    page.wait_for_url(re.compile(r"/invoices/\d+/$"))  # straight to the new statement
    page.wait_for_selector("#invoice")
    body = page.inner_text("#invoice")
    usage_line = page.inner_text("tr.line-usage") if page.locator("tr.line-usage").count() else body
    assert f"Lease {lease.pk} (job {job.pk}): 2× GeForce RTX 4090" in usage_line
    assert "600.000" in usage_line and "\t$0.50\t$0.17" in usage_line  # rate per GPU-hour, amount in cents
    assert "$0.17" in page.inner_text("#invoice-total")
    assert page.locator("#reconciled").count() == 1
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    assert time.monotonic() - started < 60
