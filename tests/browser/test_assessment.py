"""A provider pastes a fleet in Chromium and reads the report."""

import pytest

from marketplace.models import FleetAssessment
from tests.browser.conftest import login
from tests.factories import PASSWORD, ProviderFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_provider_pastes_fleet_and_reads_report(page) -> None:
    ProviderFactory(user=UserFactory(username="farmer"))
    login(page, username="farmer", password=PASSWORD)
    page.wait_for_selector("text=Log out farmer")
    page.goto("/provider/assessments/new/")
    page.fill("textarea[name=text]", "RX580 8GB,400\nGTX 1070,300\nrtx 3060ti lhr,200\n3090,60\nMystery Card,2\n")
    page.fill("input[name=utilisation_pct]", "60")
    page.click("button:has-text('Assess my fleet')")
    page.wait_for_url("**/provider/assessments/*/")
    share = page.locator("#qualifying-share")
    assert "6.2%" in share.inner_text()
    assert "60 of 962 GPUs" in share.inner_text()
    assert page.locator("svg[aria-label='GPUs by AI tier']").count() == 1
    assert page.locator("tr.unmatched").inner_text().startswith("5")
    assert page.locator("text=Upgrade path").count() == 1
    assessment = FleetAssessment.objects.get()
    assert assessment.qualifying_gpus == 60


def test_form_error_is_shown_in_the_browser(page) -> None:
    ProviderFactory(user=UserFactory(username="farmer2"))
    login(page, username="farmer2", password=PASSWORD)
    page.wait_for_selector("text=Log out farmer2")
    page.goto("/provider/assessments/")
    page.fill("textarea[name=text]", "RX 580,lots\n")
    page.click("button:has-text('Assess my fleet')")
    page.wait_for_selector("text=Line 1: count 'lots' is not a whole number")
    assert FleetAssessment.objects.count() == 0
