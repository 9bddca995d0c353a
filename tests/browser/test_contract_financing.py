"""In Chromium (issue 13, done-when): a miner with only unsuitable mining cards goes from its fleet assessment to a
funded contract-backed advance, registers its new node (the real agent Runner over HTTP) and staff verify it; the
customer's contract starts and its first payment repays the lender, which the lender sees on its advance page."""

import re
import time
from typing import Any

import pytest
from rigshift_agent.detect import simulate, simulated_benchmark, simulated_challenge_tflops
from rigshift_agent.executor import SimulatedExecutor
from rigshift_agent.runner import Runner
from rigshift_agent.state import MemoryStore
from rigshift_client import ApiClient

from billing.selectors.ledger import ledger_verify
from billing.services.wallet import wallet_credit
from common.money import MICROS
from financing.models import Advance, AdvanceStatus, ContractDemandStatus
from financing.services.demand import contract_demand_post
from marketplace.models import Node
from tests.browser.conftest import login
from tests.factories import PASSWORD, CustomerFactory, ProviderFactory, UserFactory
from tests.financing.support import lender

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class AgentClock:
    def __call__(self) -> float:
        return time.time()


def _as(page: Any, username: str) -> None:
    page.context.clear_cookies()
    login(page, username=username, password=PASSWORD)
    page.wait_for_selector(f"text=Log out {username}")


def test_a_miner_without_history_is_financed_against_a_contract_and_its_first_payment_repays_the_lender(
    page: Any, live_server: Any
) -> None:
    buyer = CustomerFactory(user=UserFactory(email="ml@vision-lab.ai")).user
    wallet_credit(user=buyer, amount_micros=2_000 * MICROS, key="browser:buyer")
    demand = contract_demand_post(
        customer_user=buyer, gpu_model_slug="rtx-3090", gpu_count=4, term_months=12, price_micros=300_000
    )
    ProviderFactory(user=UserFactory(username="miner", email="dana@hashfarm.io"))
    UserFactory(username="ops", is_staff=True)
    funder = lender(capital_micros=5_000 * MICROS)
    funder.username = "fund"
    funder.save(update_fields=["username"])

    # The miner: its fleet is mining cards only, so the assessment points it to open contract demand.
    _as(page, "miner")
    page.goto("/provider/assessments/new/")
    page.fill("textarea[name=text]", "RX 580 8GB,400\nGTX 1070,300\n")
    page.click("button:has-text('Assess my fleet')")
    page.wait_for_url("**/provider/assessments/*/")
    page.click("#open-demand")
    page.wait_for_url("**/provider/financing/**")
    row = page.locator(f"#demand-{demand.pk}")
    assert "$3,000.00" in row.inner_text()  # the advance it would get: 4 used RTX 3090s
    row.locator("button:has-text('Offer to fulfil')").click()
    page.wait_for_url(re.compile(r".*/provider/financing/applications/\d+/$"))
    assert "Offered" in page.locator("#app-status").inner_text()
    assert page.locator("#offer-principal").inner_text() == "$3,000.00"

    # Staff approve; the lender funds it from its portal (disbursed: the delivery deadline starts).
    _as(page, "ops")
    page.goto("/console/financing/")
    page.click("#pending button:has-text('Approve')")
    page.wait_for_selector("text=open for funding")
    advance = Advance.objects.get()
    _as(page, "fund")
    page.goto("/lender/")
    page.click(f"#offered a[href='/lender/advances/{advance.pk}/']")
    assert (
        "Awarded" in page.locator("#contract-status").inner_text()
        or "Open" in page.locator("#contract-status").inner_text()
    )
    page.click("button:has-text('Fund this advance')")
    page.wait_for_selector("#advance-status:has-text('Active')")
    assert page.locator("#advance-repaid").inner_text() == "$0.00"

    # The miner registers the new node on its portal; its agent (the real Runner, over HTTP) reports the hardware.
    _as(page, "miner")
    page.goto("/provider/nodes/new/")
    page.fill("input[name=name]", "new-3090s")
    page.select_option("select[name=region]", "eu")
    page.select_option("select[name=gpu_model]", "rtx-3090")
    page.fill("input[name=gpu_count]", "4")
    page.fill("input[name=price_per_gpu_hour]", "0.30")
    page.fill("input[name=min_bid_per_gpu_hour]", "0.20")
    page.click("main button[type=submit]")
    page.wait_for_selector("#agent-token")
    token = page.locator("#agent-token").inner_text().strip()
    clock = AgentClock()
    Runner(
        client=ApiClient(server=live_server.url, token=token),
        hardware=simulate("4xRTX3090"),
        store=MemoryStore(),
        executor=SimulatedExecutor(clock=clock),
        benchmark=simulated_benchmark("4xRTX3090"),
        clock=clock,
        interval=15.0,
        name="miner-agent",
        simulated_tflops=simulated_challenge_tflops("4xRTX3090"),
    ).step()
    node = Node.objects.get(name="new-3090s")
    assert node.agent_registered_at is not None and not node.hardware_mismatch

    # Staff verify it: the customer's contract starts on it, month 1 is charged and repays the lender first.
    _as(page, "ops")
    page.goto(f"/console/nodes/{node.pk}/")
    page.click("#node-verify")
    page.wait_for_selector("#node-verified:has-text('verified'):not(:has-text('not'))")
    demand.refresh_from_db()
    advance.refresh_from_db()
    assert demand.status == ContractDemandStatus.DELIVERED and demand.contract is not None
    assert advance.status == AdvanceStatus.ACTIVE and advance.repaid_micros == 545_310_000 * 5500 // 10_000

    _as(page, "fund")
    page.goto(f"/lender/advances/{advance.pk}/")
    assert page.locator("#advance-repaid").inner_text() == "$299.92"
    assert "Delivered" in page.locator("#contract-status").inner_text()
    assert "received $299.92" in page.locator("#your-share").inner_text()
    assert ledger_verify().ok
