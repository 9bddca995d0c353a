"""Provider portal pages: signup, dashboard, node registration and management, payout account.

Thin: parse the form, check the role, call one service or selector, render.
"""

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from common.decorators import role_required
from common.errors import NotFound, ValidationFailed
from common.money import from_micros, to_micros
from marketplace.forms import (
    NodeConnectionForm,
    NodeListingForm,
    NodeRegisterForm,
    ProviderSignupForm,
    form_add_domain_errors,
)
from marketplace.models import Node, Provider
from marketplace.selectors.challenges import node_challenges
from marketplace.selectors.nodes import (
    AGENT_INSTALL_COMMAND,
    node_agent_command,
    node_get_for_provider,
    node_list_for_provider,
    node_spec_comparison,
)
from marketplace.selectors.onboarding import onboarding_checklist
from marketplace.services.nodes import (
    node_connection_update,
    node_register,
    node_token_revoke,
    node_token_rotate,
    node_update_listing,
)
from marketplace.services.providers import provider_payout_account_connect, provider_signup

provider_required = role_required(
    allowed=lambda user: hasattr(user, "provider"), message="Only provider accounts can use the provider portal."
)


def _provider(request: HttpRequest) -> Provider:
    return request.user.provider  # type: ignore[union-attr]


def _own_node(request: HttpRequest, node_id: int) -> Node:
    try:
        return node_get_for_provider(provider=_provider(request), node_id=node_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _token_page(request: HttpRequest, *, node: Node, raw_token: str, rotated: bool) -> HttpResponse:
    """The one and only time a raw agent token is shown; never cached, never stored."""
    response = render(
        request,
        "provider/node_token.html",
        {
            "node": node,
            "agent_token": raw_token,
            "agent_command": node_agent_command(server_url=request.build_absolute_uri("/"), token=raw_token),
            "agent_install": AGENT_INSTALL_COMMAND,
            "install_command": (
                f"curl -fsSL {request.build_absolute_uri('/agent/install.sh')} "
                f"| sudo RIGSHIFT_NODE_TOKEN={raw_token} bash"
            ),
            "rotated": rotated,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and hasattr(request.user, "provider"):
        return redirect("provider:dashboard")
    form = ProviderSignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            provider, _ = provider_signup(**form.cleaned_data)
        except ValidationFailed as exc:
            form_add_domain_errors(form, exc)
        else:
            login(request, provider.user, backend=settings.AUTHENTICATION_BACKENDS[0])
            messages.success(request, f"Welcome to RigShift, {provider.company}. Start with the checklist below.")
            return redirect("provider:dashboard")
    return render(request, "provider/signup.html", {"form": form})


@provider_required
def dashboard(request: HttpRequest) -> HttpResponse:
    provider = _provider(request)
    nodes = list(node_list_for_provider(provider=provider))
    steps = onboarding_checklist(provider=provider)
    return render(
        request,
        "provider/dashboard.html",
        {
            "provider": provider,
            "steps": steps,
            "steps_done": sum(step.done for step in steps),
            "nodes": nodes,
            "mismatched": [n for n in nodes if n.hardware_mismatch],
        },
    )


@provider_required
def node_table(request: HttpRequest) -> HttpResponse:
    """The dashboard's node table alone, polled by htmx."""
    nodes = list(node_list_for_provider(provider=_provider(request)))
    return render(request, "provider/_node_table.html", {"nodes": nodes})


@provider_required
@require_http_methods(["GET", "POST"])
def node_new(request: HttpRequest) -> HttpResponse:
    provider = _provider(request)
    form = NodeRegisterForm(request.POST or None, provider_country=provider.country)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            node, raw_token = node_register(
                provider=provider,
                name=data["name"],
                region=data["region"],
                country=data["country"],
                gpu_model_slug=data["gpu_model"],
                gpu_count=data["gpu_count"],
                cpu_cores=data["cpu_cores"],
                ram_gb=data["ram_gb"],
                disk_gb=data["disk_gb"],
                inet_down_mbps=data["inet_down_mbps"],
                inet_up_mbps=data["inet_up_mbps"],
                price_micros=to_micros(amount=data["price_per_gpu_hour"]),
                min_bid_micros=to_micros(amount=data["min_bid_per_gpu_hour"]),
                listed=data["listed"],
            )
        except ValidationFailed as exc:
            form_add_domain_errors(form, exc)
        else:
            return _token_page(request, node=node, raw_token=raw_token, rotated=False)
    return render(request, "provider/node_form.html", {"form": form})


@provider_required
@require_http_methods(["GET", "POST"])
def node_detail(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _own_node(request, node_id)
    if request.method == "POST":
        form = NodeListingForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                node_update_listing(
                    node=node,
                    price_micros=to_micros(amount=data["price_per_gpu_hour"]),
                    min_bid_micros=to_micros(amount=data["min_bid_per_gpu_hour"]),
                    available_from=data["available_from"],
                    available_until=data["available_until"],
                    listed=data["listed"],
                    storage_price_micros=_micros_or_none(data["storage_price_per_gb_month"]),
                    egress_price_micros=_micros_or_none(data["egress_price_per_gb"]),
                )
            except ValidationFailed as exc:
                form_add_domain_errors(form, exc)
            else:
                messages.success(request, f"Listing for {node.name} saved.")
                return redirect("provider:node-detail", node_id=node.pk)
    else:
        form = NodeListingForm(
            initial={
                "price_per_gpu_hour": _dollars(node.price_micros),
                "min_bid_per_gpu_hour": _dollars(node.min_bid_micros),
                "storage_price_per_gb_month": _dollars(node.storage_price_micros),
                "egress_price_per_gb": _dollars(node.egress_price_micros),
                "available_from": node.available_from,
                "available_until": node.available_until,
                "listed": node.listed,
            }
        )
    return _node_page(request, node=node, form=form)


def _node_page(
    request: HttpRequest,
    *,
    node: Node,
    form: NodeListingForm | None = None,
    connection: NodeConnectionForm | None = None,
    status: int = 200,
) -> HttpResponse:
    if form is None:
        form = NodeListingForm(
            initial={
                "price_per_gpu_hour": _dollars(node.price_micros),
                "min_bid_per_gpu_hour": _dollars(node.min_bid_micros),
                "storage_price_per_gb_month": _dollars(node.storage_price_micros),
                "egress_price_per_gb": _dollars(node.egress_price_micros),
                "available_from": node.available_from,
                "available_until": node.available_until,
                "listed": node.listed,
            }
        )
    if connection is None:
        connection = NodeConnectionForm(
            initial={
                "public_host": node.public_host,
                "port_range_start": node.port_range_start,
                "port_range_end": node.port_range_end,
            }
        )
    return render(
        request,
        "provider/node_detail.html",
        {
            "node": node,
            "form": form,
            "connection_form": connection,
            "comparison": node_spec_comparison(node=node),
            "challenges": node_challenges(node=node),
        },
        status=status,
    )


@provider_required
@require_POST
def node_connection(request: HttpRequest, node_id: int) -> HttpResponse:
    """The node's public address and host port range (where customers reach their workloads)."""
    node = _own_node(request, node_id)
    form = NodeConnectionForm(request.POST)
    if form.is_valid():
        try:
            node_connection_update(node=node, **form.cleaned_data)
        except ValidationFailed as exc:
            form_add_domain_errors(form, exc)
        else:
            messages.success(
                request, f"Connection settings for {node.name} saved; the agent uses them at its next start."
            )
            return redirect("provider:node-detail", node_id=node.pk)
    return _node_page(request, node=node, connection=form, status=400)


def _micros_or_none(amount: Decimal | None) -> int | None:
    return None if amount is None else to_micros(amount=amount)


def _dollars(micros: int) -> Decimal:
    """Dollars for a form field: 2.45 rather than 2.450000, but every significant digit kept."""
    value = from_micros(micros=micros)
    cents = value.quantize(Decimal("0.01"))
    return cents if cents == value else value.normalize()


@provider_required
@require_POST
def node_token_rotate_view(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _own_node(request, node_id)
    raw_token = node_token_rotate(node=node)
    return _token_page(request, node=node, raw_token=raw_token, rotated=True)


@provider_required
@require_POST
def node_token_revoke_view(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _own_node(request, node_id)
    node_token_revoke(node=node)
    messages.warning(request, f"The agent token of {node.name} is revoked; the agent can no longer connect.")
    return redirect("provider:node-detail", node_id=node.pk)


@provider_required
@require_http_methods(["GET", "POST"])
def payout_account(request: HttpRequest) -> HttpResponse:
    provider = _provider(request)
    if request.method == "POST":
        try:
            provider_payout_account_connect(provider=provider)
        except ValidationFailed as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Payout account connected.")
            return redirect("provider:dashboard")
    return render(request, "provider/payout_account.html", {"provider": provider})
