"""In Chromium: a provider goes from its fleet assessment to an offer, staff approve it, a lender funds it, and the
provider sees the advance being repaid from its earnings."""

import re
from typing import Any

import pytest

from common.money import MICROS
from financing.models import Advance, AdvanceApplication, AdvanceStatus
from tests.browser.conftest import login
from tests.factories import PASSWORD, GPUModelFactory, NodeFactory, ProviderFactory, UserFactory
from tests.financing.support import earn, lender, season

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_assessment_to_funded_advance_to_repayment(page: Any) -> None:
    model = GPUModelFactory(slug="rtx-4090")
    GPUModelFactory(
        slug="rx-580-8gb",
        name="Radeon RX 580 8GB",
        tier="unsuitable",
        launch_price_usd=229,
        tensor_cores=False,
        aliases=["RX 580 8GB"],
    )
    provider = ProviderFactory(user=UserFactory(username="miner"))
    node = season(NodeFactory(provider=provider, gpu_model=model, name="old-rig"))  # earnings count after 30 days
    earn(provider_user=provider.user, node_id=node.pk, charge_micros=6_000 * MICROS)  # some qualifying history
    UserFactory(username="ops", is_staff=True)
    funder = lender(capital_micros=20_000 * MICROS)
    funder.username = "fund"
    funder.save(update_fields=["username"])

    # Provider: assess the mining fleet, then apply from its upgrade path.
    login(page, username="miner", password=PASSWORD)
    page.wait_for_selector("text=Log out miner")
    page.goto("/provider/assessments/new/")
    page.fill("textarea[name=text]", "RX 580 8GB,4\n")
    page.click("button:has-text('Assess my fleet')")
    page.wait_for_url("**/provider/assessments/*/")
    page.click("#finance-upgrade")
    page.wait_for_url("**/provider/financing/?assessment=*")
    page.click("button:has-text('Apply from assessment')")
    page.wait_for_url(re.compile(r".*/provider/financing/applications/\d+/$"))
    assert "Offered" in page.locator("#app-status").inner_text()
    assert page.locator("#offer-principal").inner_text() == "$6,396.00"
    assert page.locator("#arithmetic li").count() >= 5
    app = AdvanceApplication.objects.get()
    assert app.assessment is not None and app.gpu_model.slug == "rtx-4090"

    # Staff approve in the console.
    page.context.clear_cookies()
    login(page, username="ops", password=PASSWORD)
    page.wait_for_selector("text=Log out ops")
    page.goto("/console/financing/")
    page.click("#pending button:has-text('Approve')")
    page.wait_for_selector("text=open for funding")

    # The lender funds it from its portal.
    page.context.clear_cookies()
    login(page, username="fund", password=PASSWORD)
    page.wait_for_selector("text=Log out fund")
    page.goto("/lender/")
    assert page.locator("#repayment-chart svg").count() == 1
    advance = Advance.objects.get()
    page.click(f"#offered a[href='/lender/advances/{advance.pk}/']")
    page.click("button:has-text('Fund this advance')")
    page.wait_for_selector("#advance-status:has-text('Active')")
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.ACTIVE

    # The new node is registered and verified, earns, and the provider sees the advance being repaid.
    new_node = NodeFactory(provider=provider, gpu_model=model, name="new-4090s")
    earn(provider_user=provider.user, node_id=new_node.pk, charge_micros=2_000 * MICROS)
    page.context.clear_cookies()
    login(page, username="miner", password=PASSWORD)
    page.wait_for_selector("text=Log out miner")
    page.goto("/provider/financing/")
    assert "Active" in page.locator("#advances").inner_text()
    page.click(f"#advances a[href='/provider/financing/advances/{advance.pk}/']")
    advance.refresh_from_db()
    assert advance.repaid_micros == 1_660 * MICROS * advance.withhold_bps // 10_000 > 0
    assert page.locator("#advance-repaid").inner_text() != "$0.00"
    assert page.locator("#advance-projected").inner_text() != "—"
