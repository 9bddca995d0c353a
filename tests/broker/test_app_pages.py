"""Customer portal pages (/app/): rendering, role checks, tenant isolation, form errors, and the booking flow."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from billing.selectors.wallet import wallet_balance
from billing.services.wallet import wallet_credit
from broker.models import Job, JobState
from common.models import ApiToken
from marketplace.models import Customer
from tests.factories import PASSWORD, JobFactory, LeaseFactory, NodeFactory, ProviderFactory

pytestmark = pytest.mark.django_db

PAGES = ["/app/", "/app/search/", "/app/jobs/", "/app/jobs/new/", "/app/wallet/", "/app/tokens/"]


def fund(customer: Customer, dollars: int) -> None:
    wallet_credit(user=customer.user, amount_micros=dollars * 1_000_000, key=f"test-fund:{customer.pk}:{dollars}")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def cust_client(customer: Customer) -> Client:
    return logged_in(customer.user)


@pytest.fixture
def market(db: Any) -> list[Any]:
    return [
        NodeFactory(name="cheap-eu", price_micros=400_000, region="eu", gpu_count=4),
        NodeFactory(name="dear-us", price_micros=900_000, region="us", gpu_count=8, country="US"),
    ]


def booking(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "train-llm",
        "gpu_count": "2",
        "verified_only": "on",
        "image": "pytorch/pytorch:latest",
        "command": "python train.py",
        "env": "EPOCHS=3",
        "ports": "8888",
        "mode": "on_demand",
        "max_price": "1.00",
        "duration_hours": "2",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --------------------------------------------------------------------------- roles


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", PAGES)
def test_provider_gets_403(url: str) -> None:
    provider = ProviderFactory()
    assert logged_in(provider.user).get(url).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_customer_pages_render(cust_client: Client, market: Any, url: str) -> None:
    response = cust_client.get(url)
    assert response.status_code == 200
    assert b"Customer portal" in response.content  # the nav of base.html, logged in as a customer


# --------------------------------------------------------------------------- signup and dashboard


def test_signup_page_creates_customer_and_logs_in(client: Client) -> None:
    assert client.get("/app/signup/").status_code == 200
    response = client.post(
        "/app/signup/",
        {"username": "ada", "password": PASSWORD, "email": "ada@example.com", "company": "Ada Labs"},
    )
    assert response.status_code == 302 and response["Location"] == "/app/"
    customer = Customer.objects.get(user__username="ada")
    assert customer.company == "Ada Labs"
    page = client.get("/app/")
    assert page.status_code == 200
    assert wallet_balance(user=customer.user).available_micros == 0
    assert b'id="low-balance"' in page.content  # $0 is a low balance


def test_signup_page_shows_errors_and_saves_nothing(client: Client, customer: Customer) -> None:
    taken = customer.user.username
    response = client.post("/app/signup/", {"username": taken, "password": "x", "email": "not-an-email"})
    assert response.status_code == 200
    assert b"errorlist" in response.content
    assert User.objects.filter(username__iexact=taken).count() == 1
    response = client.post("/app/signup/", {"username": "newbie", "password": "123", "email": "n@example.com"})
    assert response.status_code == 200
    assert b"password" in response.content.lower() and b"errorlist" in response.content
    assert not User.objects.filter(username="newbie").exists()


def test_dashboard_low_balance_warning_goes_away_after_funding(cust_client: Client, customer: Customer) -> None:
    fund(customer, 5)
    assert b'id="low-balance"' in cust_client.get("/app/").content
    fund(customer, 100)
    page = cust_client.get("/app/")
    assert b'id="low-balance"' not in page.content
    assert b"$105.00" in page.content


def test_low_balance_uses_the_typical_job_hour(cust_client: Client, customer: Customer) -> None:
    """$50 is over the $10 floor but under one hour of the latest job (8 GPUs leased at $9/GPU-hour = $72)."""
    node: Any = NodeFactory(gpu_count=8, price_micros=9_000_000)
    job = JobFactory(customer=customer, name="big", gpu_count=8, image="x", duration_seconds=3600)
    now = timezone.now()
    LeaseFactory(
        job=job,
        node=node,
        gpu_slots=list(range(8)),
        gpu_count=8,
        price_micros=9_000_000,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
    )
    fund(customer, 50)
    page = cust_client.get("/app/").content.decode()
    assert 'id="low-balance"' in page and "one hour of your latest job" in page and "$72.00" in page
    fund(customer, 100)
    assert 'id="low-balance"' not in cust_client.get("/app/").content.decode()


# --------------------------------------------------------------------------- search


def test_search_lists_offers_and_filters(cust_client: Client, market: Any) -> None:
    page = cust_client.get("/app/search/")
    assert b"cheap-eu" not in page.content  # node names are not shown, GPUs are
    assert page.content.count(b"GeForce RTX 4090") >= 2
    assert b"2 offers" in page.content
    only_us = cust_client.get("/app/search/", {"region": "us"})
    assert b"1 offer" in only_us.content and b"$0.90" in only_us.content and b"$0.40" not in only_us.content
    cheap = cust_client.get("/app/search/", {"max_price": "0.50", "min_gpus": "2"})
    assert b"1 offer" in cheap.content and b"$0.40" in cheap.content
    none = cust_client.get("/app/search/", {"min_vram": "80"})
    assert b"0 offers" in none.content


def test_search_query_language_and_htmx_partial(cust_client: Client, market: Any) -> None:
    response = cust_client.get("/app/search/results/", {"q": "num_gpus>=8 region in [us,asia]"})
    assert response.status_code == 200
    assert b"<html" not in response.content  # a partial
    assert b"1 offer" in response.content
    htmx = cust_client.get("/app/search/", {"q": "price<0.5"}, HTTP_HX_REQUEST="true")
    assert b"<html" not in htmx.content and b"1 offer" in htmx.content
    assert "HX-Request" in htmx["Vary"]
    # htmx restoring a pushed URL from history needs the whole page.
    restore = cust_client.get(
        "/app/search/", {"q": "price<0.5"}, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert b"<html" in restore.content and b"1 offer" in restore.content


@pytest.mark.parametrize("q", ["gpu_ramm>=24", "gpu_ram>>24", "region==mars", "num_gpus in 3", "price<abc"])
def test_search_bad_query_is_shown_inline_never_500(cust_client: Client, market: Any, q: str) -> None:
    for url in ("/app/search/", "/app/search/results/"):
        response = cust_client.get(url, {"q": q})
        assert response.status_code == 200
        assert b'id="query-error"' in response.content
        assert b"offer-table" not in response.content


def test_search_bad_order_and_bad_filter_value_are_inline(cust_client: Client, market: Any) -> None:
    response = cust_client.get("/app/search/results/", {"order": "bogus"})
    assert b'id="query-error"' in response.content
    response = cust_client.get("/app/search/results/", {"min_gpus": "lots"})
    assert b'id="query-error"' in response.content and b"Min free GPUs" in response.content


# --------------------------------------------------------------------------- quote and booking


def test_live_quote_partial(cust_client: Client, market: Any) -> None:
    response = cust_client.post("/app/jobs/quote/", booking())
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="quote-matching">2<' in body  # both nodes have 2 free GPUs at <= $1
    assert "$0.40" in body and "$0.90" in body
    assert 'id="quote-max-cost"><strong>$4.00' in body  # $1 × 2 GPUs × 2 h


def test_live_quote_shows_errors_inline(cust_client: Client, market: Any) -> None:
    impossible = cust_client.post("/app/jobs/quote/", booking(min_gpu_ram="500"))
    assert impossible.status_code == 200
    assert b'id="quote-error"' in impossible.content and b"min_gpu_ram" in impossible.content
    bad_number = cust_client.post("/app/jobs/quote/", booking(gpu_count="many"))
    assert b'id="quote-error"' in bad_number.content
    # A quote needs no workload: an empty image is not an error here.
    ok = cust_client.post("/app/jobs/quote/", booking(image="", name=""))
    assert b'id="quote-result"' in ok.content


def test_booking_books_holds_escrow_and_redirects(cust_client: Client, customer: Customer, market: Any) -> None:
    fund(customer, 50)
    response = cust_client.post("/app/jobs/new/", booking(idempotency_key="form-1"))
    assert response.status_code == 302
    job = Job.objects.get(customer=customer)
    assert response["Location"] == f"/app/jobs/{job.pk}/"
    assert job.held_micros == 4_000_000 and job.env == {"EPOCHS": "3"} and job.ports == [8888]
    assert wallet_balance(user=customer.user).held_micros == 4_000_000
    # The same form submitted twice books once.
    again = cust_client.post("/app/jobs/new/", booking(idempotency_key="form-1"))
    assert again.status_code == 302 and Job.objects.filter(customer=customer).count() == 1
    page = cust_client.get(response["Location"])
    assert page.status_code == 200
    assert b"train-llm" in page.content and b"$4.00" in page.content and b'id="cancel-button"' in page.content


def test_booking_402_shortfall_is_a_form_error_and_saves_nothing(
    cust_client: Client, customer: Customer, market: Any
) -> None:
    fund(customer, 1)
    response = cust_client.post("/app/jobs/new/", booking())
    assert response.status_code == 400
    assert b"short by $3.00" in response.content
    assert not Job.objects.exists()
    assert wallet_balance(user=customer.user).available_micros == 1_000_000


def test_booking_impossible_requirement_is_a_form_error(cust_client: Client, customer: Customer, market: Any) -> None:
    fund(customer, 500)
    response = cust_client.post("/app/jobs/new/", booking(gpu_count="16"))
    assert response.status_code == 400
    assert b"largest node (8 GPUs)" in response.content
    assert not Job.objects.exists()


def test_booking_form_validation_errors(cust_client: Client, customer: Customer, market: Any) -> None:
    fund(customer, 500)
    response = cust_client.post("/app/jobs/new/", booking(max_price=None, env="NOEQUALS", ports="99999"))
    assert response.status_code == 400
    body = response.content.decode()
    assert "KEY=VALUE" in body and "not a port number" in body
    response = cust_client.post("/app/jobs/new/", booking(max_price=None))
    assert response.status_code == 400 and "needs a max_price" in response.content.decode()
    assert not Job.objects.exists()


# --------------------------------------------------------------------------- job page, cancel, isolation


@pytest.fixture
def booked(customer: Customer, market: Any) -> Job:
    fund(customer, 50)
    response = logged_in(customer.user).post("/app/jobs/new/", booking())
    assert response.status_code == 302
    return Job.objects.get(customer=customer)


def test_job_page_and_status_partial(cust_client: Client, booked: Job) -> None:
    page = cust_client.get(f"/app/jobs/{booked.pk}/")
    body = page.content.decode()
    assert page.status_code == 200
    assert 'id="job-state"' in body and "job-timeline" in body and "booked" in body
    assert f'hx-get="/app/jobs/{booked.pk}/status/"' in body  # polled while live
    partial = cust_client.get(f"/app/jobs/{booked.pk}/status/")
    assert partial.status_code == 200 and b"<html" not in partial.content
    listing = cust_client.get("/app/jobs/")
    assert f"/app/jobs/{booked.pk}/".encode() in listing.content


def test_pending_job_shows_why(cust_client: Client, booked: Job) -> None:
    Job.objects.filter(pk=booked.pk).update(state=JobState.PENDING, pending_reason="no node with 2 free GPUs")
    body = cust_client.get(f"/app/jobs/{booked.pk}/").content.decode()
    assert 'id="job-explanation"' in body


def test_cancel_returns_escrow(cust_client: Client, customer: Customer, booked: Job) -> None:
    assert wallet_balance(user=customer.user).available_micros == 46_000_000
    response = cust_client.post(f"/app/jobs/{booked.pk}/cancel/")
    assert response.status_code == 302
    booked.refresh_from_db()
    assert booked.state == JobState.CANCELLED
    balance = wallet_balance(user=customer.user)
    assert balance.available_micros == 50_000_000 and balance.held_micros == 0
    page = cust_client.get(f"/app/jobs/{booked.pk}/").content.decode()
    assert "cancel-button" not in page and "hx-trigger" not in page.split('id="job-status"')[1][:200]
    # A second cancel is refused with a message, releases nothing.
    again = cust_client.post(f"/app/jobs/{booked.pk}/cancel/", follow=True)
    assert b"nothing to cancel" in again.content
    assert wallet_balance(user=customer.user).available_micros == 50_000_000


def test_cancel_needs_post(cust_client: Client, booked: Job) -> None:
    assert cust_client.get(f"/app/jobs/{booked.pk}/cancel/").status_code == 405


def test_other_customer_cannot_see_or_cancel(booked: Job, other_customer: Customer) -> None:
    other = logged_in(other_customer.user)
    for url in (f"/app/jobs/{booked.pk}/", f"/app/jobs/{booked.pk}/status/"):
        assert other.get(url).status_code == 404
    assert other.post(f"/app/jobs/{booked.pk}/cancel/").status_code == 404
    booked.refresh_from_db()
    assert booked.state == JobState.PENDING and booked.held_micros == 4_000_000
    assert f"/app/jobs/{booked.pk}/".encode() not in other.get("/app/jobs/").content
    assert b"train-llm" not in other.get("/app/").content


def test_job_page_needs_customer_login(client: Client, booked: Job) -> None:
    assert client.get(f"/app/jobs/{booked.pk}/").status_code == 302
    assert client.post(f"/app/jobs/{booked.pk}/cancel/").status_code == 302
    booked.refresh_from_db()
    assert booked.state == JobState.PENDING
    provider = ProviderFactory()
    assert logged_in(provider.user).post(f"/app/jobs/{booked.pk}/cancel/").status_code == 403


# --------------------------------------------------------------------------- wallet and tokens


def test_wallet_topup_local_gateway_credits_at_once(cust_client: Client, customer: Customer) -> None:
    response = cust_client.post("/app/wallet/", {"amount": "25.50"})
    assert response.status_code == 302
    assert wallet_balance(user=customer.user).available_micros == 25_500_000
    page = cust_client.get("/app/wallet/")
    assert b"$25.50" in page.content and b"/app/invoices/" in page.content and b"wallet-entries" in page.content


@pytest.mark.parametrize("amount", ["", "0", "-5", "abc", "1.234", "1000000"])
def test_wallet_topup_bad_amount(cust_client: Client, customer: Customer, amount: str) -> None:
    response = cust_client.post("/app/wallet/", {"amount": amount})
    assert response.status_code == 400
    assert b"errorlist" in response.content
    assert wallet_balance(user=customer.user).available_micros == 0


def test_wallet_topup_stripe_redirects_to_checkout(
    cust_client: Client, customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing.models import TopUp

    def fake_topup_create(*, user: Any, amount_micros: int) -> TopUp:
        return TopUp.objects.create(
            user=user, amount_micros=amount_micros, gateway="stripe", checkout_url="https://checkout.stripe.test/c/1"
        )

    monkeypatch.setattr("broker.views.app.topup_create", fake_topup_create)
    response = cust_client.post("/app/wallet/", {"amount": "10"})
    assert response.status_code == 302 and response["Location"] == "https://checkout.stripe.test/c/1"
    assert wallet_balance(user=customer.user).available_micros == 0


def test_tokens_create_show_once_and_revoke(cust_client: Client, customer: Customer, other_customer: Customer) -> None:
    response = cust_client.post("/app/tokens/", {"name": "laptop"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=customer.user, name="laptop")
    body = response.content.decode()
    assert 'id="new-token">rs_' in body and token.prefix in body
    listing = cust_client.get("/app/tokens/").content.decode()
    assert f"<code>{token.prefix}…</code>" in listing and 'id="new-token"' not in listing
    # Another customer cannot revoke it.
    assert logged_in(other_customer.user).post(f"/app/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert cust_client.post(f"/app/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert f"<code>{token.prefix}…</code>" not in cust_client.get("/app/tokens/").content.decode()


def test_matched_job_shows_its_lease_and_cancel_ends_it(cust_client: Client, customer: Customer, booked: Job) -> None:
    from broker.services.matching import match_round_run

    match_round_run()
    booked.refresh_from_db()
    assert booked.state == JobState.MATCHED
    body = cust_client.get(f"/app/jobs/{booked.pk}/status/").content.decode()
    lease_html = body[body.index('id="job-lease"') :]
    assert "cheap-eu" in lease_html and "GeForce RTX 4090" in lease_html and "0, 1" in lease_html
    assert "$0.40/GPU-hour" in lease_html and "Reserved" in lease_html
    assert 'id="job-explanation"' not in body  # only pending jobs explain themselves
    cust_client.post(f"/app/jobs/{booked.pk}/cancel/")
    booked.refresh_from_db()
    assert booked.state == JobState.CANCELLED
    assert not booked.leases.filter(state__in=["reserved", "active"]).exists()
    assert wallet_balance(user=customer.user).held_micros == 0
    assert wallet_balance(user=customer.user).available_micros == 50_000_000  # nothing was used


def test_pending_job_uses_the_matching_explanation_when_provided(
    cust_client: Client, booked: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    """broker.services.explain.job_explain (the matching work) is preferred over the stored pending_reason."""
    from broker.services.explain import Explanation

    def fake_explain(*, job: Job) -> Explanation:
        message = f"cheapest node for job {job.pk} asks $2.45/h; your max is $1.00/h"
        return Explanation(job_id=job.pk, state=job.state, code="price", message=message)

    monkeypatch.setattr("broker.services.explain.job_explain", fake_explain)
    body = cust_client.get(f"/app/jobs/{booked.pk}/").content.decode()
    assert f"cheapest node for job {booked.pk} asks $2.45/h" in body


def test_search_book_link_prefills_the_booking_form(cust_client: Client, market: Any) -> None:
    page = cust_client.get("/app/search/", {"region": "us"}).content.decode()
    link = "/app/jobs/new/?gpu_models=rtx-4090&amp;max_price=0.9&amp;regions=us"
    assert link in page
    form = cust_client.get(link.replace("&amp;", "&")).content.decode()
    assert 'value="0.9"' in form and '<option value="us" selected>' in form
    assert '<option value="rtx-4090" selected>' in form
