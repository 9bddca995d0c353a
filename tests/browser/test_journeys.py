"""One journey per role, at phone width, following links from `/` the way a person would (issue 17, point 9).

Each step asserts no console errors and no horizontal overflow at 390 px and saves a screenshot under
var/screenshots/<role>/ (see tests/browser/journeys.py).
"""

from typing import Any

import pytest

from tests.browser.journeys import Journey
from tests.factories import PASSWORD, NodeFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fill(page: Any, values: dict[str, str]) -> None:
    for name, value in values.items():
        page.fill(f"main [name={name}]", value)


def test_provider_journey(page: Any) -> None:
    NodeFactory(name="market-4090")  # a market price for the assessment
    j = Journey(page, role="provider")
    page.goto("/")
    j.step("home")
    j.follow("header >> text=Sell GPU capacity", name="sign up", url=r"/provider/signup/$")
    _fill(page, {"username": "journey-miner", "password": PASSWORD, "email": "m@example.com"})
    _fill(page, {"company": "Journey Hashfarm", "contact_name": "Pat Miner"})
    page.select_option("main select[name=country]", "DE")
    j.follow("main button[type=submit]", name="provider portal", url=r"/provider/$")
    j.follow("main >> text=Assess your fleet", name="assessment form", url=r"/provider/assessments/new/$")
    page.fill("main textarea[name=text]", "Model;Count\nRX 580 8GB;120\nRTX 3090;8\nAntminer S19 Pro;4\n")
    j.follow("main button[type=submit]", name="assessment report", url=r"/provider/assessments/\d+/$")
    assert page.locator("#not-gpus").is_visible()
    j.readme_image("fleet-assessment.png")
    j.follow(".subnav >> text=Register a node", name="register a node", url=r"/provider/nodes/new/$")
    assert page.input_value("main select[name=region]") == "eu"  # follows Germany
    _fill(page, {"name": "rig-580", "gpu_count": "6", "price_per_gpu_hour": "0.10", "min_bid_per_gpu_hour": "0.05"})
    page.select_option("main select[name=gpu_model]", "rx-580-8gb")
    j.follow("main button[type=submit]", name="agent token", url=r"/provider/nodes/new/$")
    assert page.locator("#gpu-verdict").is_visible()
    assert page.inner_text("#agent-command").startswith(".venv/bin/rigshift-agent run")
    j.follow("text=Go to the node page", name="node page", url=r"/provider/nodes/\d+/$")
    j.follow("text=← Provider portal", name="back to the portal", url=r"/provider/$")
    j.follow("#earnings-link", name="earnings", url=r"/provider/earnings/$")
    assert "-$0.00" not in page.content()
    j.follow("text=← Provider portal", name="portal again", url=r"/provider/$")
    j.follow(".subnav >> text=Fleet assessments", name="assessments", url=r"/provider/assessments/$")


def test_customer_journey(page: Any) -> None:
    NodeFactory(name="eu-box", price_micros=400_000, region="eu", gpu_count=4, dlperf=82.6, reliability=0.9962)
    NodeFactory(name="us-box", price_micros=900_000, region="us", country="US", gpu_count=8, dlperf=80.1)
    NodeFactory(name="unverified-box", price_micros=350_000, region="eu", verified=False, reliability=0.9133)
    j = Journey(page, role="customer")
    page.goto("/")
    j.step("home")
    j.follow("main >> text=I need GPUs", name="login asks for a customer account", url=r"/accounts/login/")
    j.follow("main .button >> text=sign up as a customer", name="sign up", url=r"/app/signup/$")
    _fill(page, {"username": "journey-ada", "password": PASSWORD, "email": "ada@example.com", "company": "Ada Labs"})
    j.follow("main button[type=submit]", name="customer portal", url=r"/app/$")
    j.follow(".subnav >> text=Wallet", name="wallet", url=r"/app/wallet/$")
    page.fill("main input[name=amount]", "50")
    page.click("form[action='/app/wallet/'] button[type=submit]")
    page.wait_for_selector("#wallet-available:has-text('$50.00')")
    j.step("topped up")
    j.follow(".subnav >> text=Search GPUs", name="search", url=r"/app/search/")
    page.fill("main input[name=q]", 'gpu_name=="RTX 4090" num_gpus>=2')
    page.wait_for_selector("#result-count:has-text('3 offers')")
    j.step("search by the name as typed")
    j.readme_image("offer-search.png")
    j.follow("#offer-table tr:has-text('$0.40') >> text=Book", name="booking form", url=r"/app/jobs/new/")
    page.fill("main input[name=name]", "journey-train")
    page.fill("main input[name=duration_hours]", "2")
    for digit in "12":  # typing quickly must not abort requests (no htmx sendAbort errors)
        page.type("main input[name=gpu_count]", digit, delay=30)
    page.fill("main input[name=gpu_count]", "2")
    page.wait_for_selector("#quote-max-cost:has-text('$1.60')")
    j.step("live quote")
    j.follow("#book-button", name="job page", url=r"/app/jobs/\d+/$")
    j.follow(".subnav >> text=Jobs", name="jobs", url=r"/app/jobs/$")
    j.follow(".subnav >> text=Invoices", name="invoices", url=r"/app/invoices/$")
    j.follow(".subnav >> text=API tokens", name="api tokens", url=r"/app/tokens/$")
    page.goto("/")
    j.follow("main >> text=I have GPUs", name="another role's portal", url=r"/provider/$", status=403)
    assert page.locator("#error-403").is_visible() and page.locator("#error-403 a[href='/app/']").count()


def test_lender_journey(page: Any) -> None:
    j = Journey(page, role="lender")
    page.goto("/")
    j.step("home")
    j.follow("header >> text=Lend", name="sign up", url=r"/lender/signup/$")
    _fill(page, {"name": "Journey Capital", "username": "journey-lender", "email": "l@example.com"})
    page.fill("main [name=password]", PASSWORD)
    j.follow("main button[type=submit]", name="lender portal", url=r"/lender/$")
    page.fill("#capital-amount", "25000")
    j.follow("#capital button[type=submit]", name="capital committed", url=r"/lender/")
    page.click("header >> text=Log out")
    page.wait_for_url(r"**/")
    j.follow("header >> text=Log in", name="login", url=r"/accounts/login/")
    _fill(page, {"username": "journey-lender", "password": PASSWORD})
    j.follow("main button[type=submit]", name="lands on the lender portal", url=r"/lender/$")


def test_staff_journey(page: Any) -> None:
    UserFactory(username="journey-ops", is_staff=True)
    node = NodeFactory(name="console-box")
    j = Journey(page, role="staff")
    page.goto("/")
    j.step("home")
    j.follow("header >> text=Log in", name="login", url=r"/accounts/login/")
    _fill(page, {"username": "journey-ops", "password": PASSWORD})
    j.follow("main button[type=submit]", name="console", url=r"/console/$")
    j.follow(".subnav >> text=Supply", name="supply", url=r"/console/supply/")
    j.follow(".subnav >> text=Match rounds", name="match rounds", url=r"/console/rounds/")
    j.follow(".subnav >> text=Nodes", name="nodes", url=r"/console/nodes/")
    j.follow(f"main >> text={node.name}", name="node", url=rf"/console/nodes/{node.pk}/")
    j.follow("header >> text=API", name="api docs", url=r"/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    j.step("api docs rendered")
    page.goto("/console/jobs/999999/")
    j.step("missing job is a styled 404", status=404)
    assert page.locator("#error-404").is_visible() and "URLconf" not in page.content()
