"""The customer booking flow in Chromium: signup → top-up → search → booking form with live quote → book →
job page → cancel → the held amount is back in the wallet."""

import re
from typing import Any

import pytest

from billing.selectors.wallet import wallet_balance
from broker.models import Job, JobState
from tests.factories import PASSWORD, NodeFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_customer_books_and_cancels_in_the_portal(page: Any) -> None:
    NodeFactory(name="eu-box", price_micros=400_000, region="eu", gpu_count=4)
    NodeFactory(name="us-box", price_micros=900_000, region="us", country="US", gpu_count=8)

    # Sign up through the page; a new wallet is empty, so the dashboard warns.
    page.goto("/app/signup/")
    page.fill("input[name=username]", "browser-ada")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=company]", "Ada Labs")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/app/$"))
    assert page.locator("#low-balance").is_visible()

    # Top up the wallet (the local gateway credits at once).
    page.click(".subnav >> text=Wallet")
    page.fill("input[name=amount]", "50")
    page.click("form[action='/app/wallet/'] button[type=submit]")
    page.wait_for_selector("#wallet-available:has-text('$50.00')")

    # Search: typing a query updates the results live; a bad clause shows its message inline.
    page.goto("/app/search/")
    page.wait_for_selector("#result-count:has-text('2 offers')")
    page.fill("input[name=q]", "num_gpus>=8")
    page.wait_for_selector("#result-count:has-text('1 offer')")
    assert "$0.90" in page.inner_text("#offer-table")
    page.fill("input[name=q]", "gpu_ramm>=8")
    page.wait_for_selector("#query-error:has-text('gpu_ramm')")
    page.fill("input[name=q]", "")
    page.select_option("select[name=region]", "eu")
    page.wait_for_selector("#offer-table:has-text('$0.40')")
    assert "$0.90" not in page.inner_text("#offer-table")
    page.wait_for_url(re.compile(r"/app/search/\?.*region=eu"))  # the live filter pushes a shareable URL

    # The booking form shows a live quote as it is filled in.
    page.goto("/app/jobs/new/")
    page.fill("input[name=name]", "browser-train")
    page.fill("input[name=gpu_count]", "2")
    page.fill("input[name=max_price]", "1.00")
    page.fill("input[name=duration_hours]", "2")
    page.wait_for_selector("#quote-max-cost:has-text('$4.00')")
    assert page.inner_text("#quote-matching") == "2"
    page.fill("input[name=gpu_count]", "16")
    page.wait_for_selector("#quote-error:has-text('largest node')")
    page.fill("input[name=gpu_count]", "2")
    page.wait_for_selector("#quote-max-cost:has-text('$4.00')")

    page.click("#book-button")
    page.wait_for_url(re.compile(r"/app/jobs/\d+/$"))
    job = Job.objects.get(name="browser-train")
    assert page.inner_text("#job-held") == "$4.00"
    assert page.locator("#job-timeline").inner_text().count("booked") == 1
    assert wallet_balance(user=job.customer.user).held_micros == 4_000_000

    # Cancel (confirm dialog accepted): the job is cancelled and the hold is back in the wallet.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-button")
    page.wait_for_selector("#job-state:has-text('Cancelled')")
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert page.inner_text("#job-held") == "$0.00"
    page.click(".subnav >> text=Wallet")
    page.wait_for_selector("#wallet-available:has-text('$50.00')")
    assert page.inner_text("#wallet-held") == "$0.00"
    assert f"Job {job.pk} cancelled" in page.inner_text("#wallet-entries")
