"""Customer portal pages: signup, dashboard, wallet with top-up, API tokens.

Thin: parse the form, check the role, call one service or selector, render.
Search lives in app_search.py, bookings and jobs in app_jobs.py.
"""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from billing.models import TopUpStatus
from billing.selectors.wallet import wallet_balance, wallet_entries
from billing.services.topups import topup_amount_parse, topup_create
from broker.forms import CustomerSignupForm, TopUpForm, form_add_domain_errors
from broker.selectors.customer_portal import api_token_own, api_tokens_active, wallet_low_balance
from broker.selectors.jobs import job_list
from broker.services.customers import customer_signup
from common.decorators import role_required
from common.errors import DomainError, ValidationFailed
from common.money import format_usd
from common.services import api_token_create, api_token_revoke
from marketplace.models import Customer

RECENT_JOBS = 10


customer_required = role_required(
    allowed=lambda user: hasattr(user, "customer"), message="Only customer accounts can use the customer portal."
)


def customer_of(request: HttpRequest) -> Customer:
    return request.user.customer  # type: ignore[union-attr]


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and hasattr(request.user, "customer"):
        return redirect("app:dashboard")
    form = CustomerSignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            customer, _ = customer_signup(**form.cleaned_data)
        except ValidationFailed as exc:
            form_add_domain_errors(form, exc)
        else:
            login(request, customer.user, backend=settings.AUTHENTICATION_BACKENDS[0])
            messages.success(request, "Welcome to RigShift. Top up your wallet, then search and book GPUs.")
            return redirect("app:dashboard")
    return render(request, "app/signup.html", {"form": form})


@customer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    customer = customer_of(request)
    jobs = list(job_list(customer=customer)[:RECENT_JOBS])
    return render(
        request,
        "app/dashboard.html",
        {
            "customer": customer,
            "balance": wallet_balance(user=customer.user),
            "low_balance": wallet_low_balance(customer=customer),
            "jobs": jobs,
        },
    )


def _topup_create(*, request: HttpRequest) -> HttpResponse:
    form = TopUpForm(request.POST)
    if form.is_valid():
        try:
            amount_micros = topup_amount_parse(amount=form.cleaned_data["amount"])
            topup = topup_create(user=request.user, amount_micros=amount_micros)  # type: ignore[arg-type]
        except DomainError as exc:
            form_add_domain_errors(form, exc)
        else:
            if topup.checkout_url and topup.status != TopUpStatus.SUCCEEDED:
                return redirect(topup.checkout_url)  # Stripe Checkout: credited by the verified webhook
            if topup.status == TopUpStatus.SUCCEEDED:
                messages.success(request, f"Added {format_usd(micros=topup.amount_micros)} to your wallet.")
            else:
                messages.error(request, "The payment gateway refused the top-up.")
            return redirect("app:wallet")
    return wallet_page(request, topup_form=form, status=400)


def wallet_page(request: HttpRequest, *, topup_form: Any = None, status: int = 200) -> HttpResponse:
    customer = customer_of(request)
    return render(
        request,
        "app/wallet.html",
        {
            "balance": wallet_balance(user=customer.user),
            "low_balance": wallet_low_balance(customer=customer),
            "entries": wallet_entries(user=customer.user, limit=30),
            "topup_form": topup_form or TopUpForm(),
        },
        status=status,
    )


@customer_required
@require_http_methods(["GET", "POST"])
def wallet(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _topup_create(request=request)
    return wallet_page(request)


@customer_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user = request.user
    new_token: str | None = None
    if request.method == "POST":
        name = (request.POST.get("name") or "api").strip()[:100] or "api"
        _, new_token = api_token_create(user=user, name=name)  # type: ignore[arg-type]
    rows = api_tokens_active(user=user)  # type: ignore[arg-type]
    response = render(request, "app/tokens.html", {"tokens": rows, "new_token": new_token})
    if new_token:
        response["Cache-Control"] = "no-store"
    return response


@customer_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = api_token_own(user=request.user, token_id=token_id)  # type: ignore[arg-type]
    if token is None:
        raise Http404("No such token.")
    api_token_revoke(token=token)
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("app:tokens")
