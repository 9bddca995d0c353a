"""The provider journey in Chromium: sign up, register a node, see its token and command once, edit the price."""

import re

import pytest

from common.tokens import token_hash
from marketplace.models import Node
from tests.factories import GPUModelFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_provider_signs_up_registers_node_and_prices_it(page) -> None:
    GPUModelFactory()

    page.goto("/provider/signup/")
    page.fill("input[name=username]", "browserminer")
    page.fill("input[name=password]", "long-enough-secret-42")
    page.fill("input[name=email]", "miner@example.com")
    page.fill("input[name=company]", "Browser Hashfarm")
    page.fill("input[name=contact_name]", "Pat Miner")
    page.select_option("select[name=country]", "SE")
    page.select_option("select[name=payout_currency]", "EUR")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/provider/$"))
    assert page.locator("h1").inner_text() == "Browser Hashfarm"
    assert page.locator("li.todo[data-step=register]").count() == 1

    page.click("text=Register a node")
    page.wait_for_url(re.compile(r"/provider/nodes/new/$"))
    page.fill("input[name=name]", "rig-1")
    page.select_option("select[name=region]", "eu")
    page.select_option("select[name=gpu_model]", "rtx-4090")
    page.fill("input[name=gpu_count]", "4")
    page.fill("input[name=cpu_cores]", "32")
    page.fill("input[name=ram_gb]", "128")
    page.fill("input[name=price_per_gpu_hour]", "0.40")
    page.fill("input[name=min_bid_per_gpu_hour]", "0.20")
    page.click("main button[type=submit]")

    page.wait_for_selector("#agent-token")
    token = page.locator("#agent-token").inner_text().strip()
    command = page.locator("#agent-command").inner_text().strip()
    assert token.startswith("rsn_")
    assert command == f".venv/bin/rigshift-agent run --server {page.base_url}/ --token {token}"
    assert "shown only once" in page.content()
    node = Node.objects.get(name="rig-1")
    assert node.token_hash == token_hash(raw=token) and node.country == "SE"

    page.click("text=Go to the node page")
    page.wait_for_url(re.compile(rf"/provider/nodes/{node.pk}/$"))
    assert token not in page.content()  # shown once only
    page.fill("input[name=price_per_gpu_hour]", "2.45")
    page.fill("input[name=min_bid_per_gpu_hour]", "1.10")
    page.check("input[name=listed]")
    page.click("text=Save listing")
    page.wait_for_selector("text=Listing for rig-1 saved.")
    assert "$2.45 per GPU-hour" in page.content()
    node.refresh_from_db()
    assert (node.price_micros, node.min_bid_micros, node.listed) == (2_450_000, 1_100_000, True)

    page.goto("/provider/")
    assert page.locator("#node-table").get_by_text("$2.45").count() == 1
    assert page.locator("li.done[data-step=register]").count() == 1
    assert token not in page.content()
