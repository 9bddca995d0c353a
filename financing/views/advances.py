"""Financing pages: the provider's applications and advances (/provider/financing/…) and the staff console
(/console/financing/…). Thin: parse the form, check the role, call one service, render."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from billing.views.pages import role_required
from common.decorators import role_required as common_role_required
from common.errors import DomainError, NotFound
from common.numbers import money_field_parse
from financing.models import AdvanceStatus
from financing.selectors.advances import (
    advance_list_for_provider,
    advance_projection,
    advance_visible_to,
    advances_all,
    application_get,
    application_list,
    applications_pending,
)
from financing.selectors.demand import demand_advance, demand_awarded, demand_visible_to_provider
from financing.services.advances import advance_payoff_early, advance_staff_action
from financing.services.applications import (
    MAX_GPUS,
    advance_application_approve,
    advance_application_reject,
    advance_application_submit,
)
from financing.services.demand import contract_demand_offer, contract_demand_quote
from marketplace.models import FleetAssessment, GPUModel, Node, Tier

View = Callable[..., HttpResponse]


staff_required = common_role_required(allowed=lambda user: user.is_staff, message="Staff only.")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return -1  # fails validation in the service with a clear message


def _micros(value: str | None, *, field: str = "amount") -> int | None:
    """A form's dollar amount → micros (None when empty), by the one money rule; else ValidationFailed."""
    return money_field_parse(value, field=field, required=False, places=2)


# --- provider ------------------------------------------------------------------------------------------------


@role_required("provider")
@require_http_methods(["GET", "POST"])
def provider_financing(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method == "POST":
        try:
            if request.POST.get("assessment"):
                app = advance_application_submit(
                    provider_user=user,
                    assessment_id=_int(request.POST.get("assessment")),
                    option_slug=request.POST.get("option") or None,
                    count=_int(request.POST.get("count")),
                    node_id=_int(request.POST.get("node")),
                )
            else:
                app = advance_application_submit(
                    provider_user=user,
                    gpu_model_slug=request.POST.get("gpu_model", ""),
                    count=_int(request.POST.get("count")),
                    node_id=_int(request.POST.get("node")),
                )
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("financing-provider")
        if app.status == "offered":
            messages.success(request, "Here is your offer; staff will review it.")
        else:
            messages.warning(request, "Underwriting declined this application; the reasons are below.")
        return redirect("financing-provider-application", application_id=app.pk)
    assessments = [
        a
        for a in FleetAssessment.objects.filter(provider__user=user).order_by("-created_at")[:10]
        if (a.report.get("upgrade_path") or {}).get("options")
    ]
    advances = list(advance_list_for_provider(provider_user=user))
    for a in advances:
        a.projected = advance_projection(advance=a)  # type: ignore[attr-defined]
    context = {
        "applications": application_list(provider_user=user)[:50],
        "advances": advances,
        "models": GPUModel.objects.exclude(tier=Tier.UNSUITABLE).order_by("name"),
        "nodes": Node.objects.filter(provider__user=user).order_by("name"),
        "assessments": assessments,
        "selected_assessment": request.GET.get("assessment", ""),
        "demand": [
            (d, contract_demand_quote(provider_user=user, demand=d))
            for d in demand_visible_to_provider(provider_user=user)[:20]
        ],
        "max_gpus": MAX_GPUS,
    }
    return render(request, "financing/provider.html", context)


@role_required("provider")
@require_http_methods(["POST"])
def provider_demand_offer(request: HttpRequest, demand_id: int) -> HttpResponse:
    """Offer to fulfil open demand: a contract-backed application (offer or reasons)."""
    try:
        app = contract_demand_offer(
            provider_user=_user(request), demand_id=demand_id, node_id=_int(request.POST.get("node"))
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("financing-provider")
    if app.status == "offered":
        messages.success(request, "Here is your contract-backed offer; staff will review it.")
    else:
        messages.warning(request, "Underwriting declined this offer; the reasons are below.")
    return redirect("financing-provider-application", application_id=app.pk)


@role_required("provider")
@require_http_methods(["GET"])
def provider_application(request: HttpRequest, application_id: int) -> HttpResponse:
    app = application_get(provider_user=_user(request), application_id=application_id)
    if app is None:
        raise Http404("No such application of yours.")
    return render(request, "financing/application.html", {"app": app, "advance": getattr(app, "advance", None)})


@role_required("provider")
@require_http_methods(["GET", "POST"])
def provider_advance(request: HttpRequest, advance_id: int) -> HttpResponse:
    user = _user(request)
    advance = advance_list_for_provider(provider_user=user).filter(pk=advance_id).first()
    if advance is None:
        raise Http404("No such advance of yours.")
    if request.method == "POST":
        try:
            advance_payoff_early(
                provider_user=user, advance_id=advance_id, amount_micros=_micros(request.POST.get("amount"))
            )
            messages.success(request, "Payment applied to your advance.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("financing-provider-advance", advance_id=advance_id)
    return render(request, "financing/advance.html", _advance_context(advance, role="provider"))


def _advance_context(advance: Any, *, role: str) -> dict[str, Any]:
    return {
        "advance": advance,
        "app": advance.application,
        "projected": advance_projection(advance=advance),
        "events": list(advance.events.all()),
        "fundings": list(advance.fundings.select_related("lender__lender")) if role == "staff" else [],
        "collateral": list(advance.collateral.select_related("node")),
        "role": role,
        "demand": advance.application.demand,
    }


# --- staff console ---------------------------------------------------------------------------------------------


@staff_required
@require_http_methods(["GET"])
def console_financing(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    if status not in (None, *AdvanceStatus.values):
        status = None
    context = {
        "pending": applications_pending(),
        "deadlines": [(d, demand_advance(demand=d)) for d in demand_awarded()[:100]],
        "advances": advances_all(status=status)[:200],
        "statuses": AdvanceStatus.choices,
        "status": status or "",
    }
    return render(request, "financing/console.html", context)


@staff_required
@require_http_methods(["GET"])
def console_advance(request: HttpRequest, advance_id: int) -> HttpResponse:
    advance = advance_visible_to(user=_user(request), advance_id=advance_id)
    if advance is None:
        raise Http404("No such advance.")
    return render(request, "financing/advance.html", _advance_context(advance, role="staff"))


@staff_required
@require_http_methods(["POST"])
def console_application_decide(request: HttpRequest, application_id: int) -> HttpResponse:
    try:
        if request.POST.get("decision") == "approve":
            advance = advance_application_approve(
                staff_user=_user(request),
                application_id=application_id,
                disburse_to=request.POST.get("disburse_to", "provider"),
                vendor_name=request.POST.get("vendor_name", ""),
            )
            messages.success(request, f"Approved: advance {advance.pk} is {advance.get_status_display().lower()}.")
        else:
            advance_application_reject(
                staff_user=_user(request), application_id=application_id, note=request.POST.get("note", "")
            )
            messages.success(request, f"Application {application_id} rejected.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("financing-console")


@staff_required
@require_http_methods(["POST"])
def console_advance_action(request: HttpRequest, advance_id: int) -> HttpResponse:
    try:
        advance = advance_staff_action(
            staff_user=_user(request),
            advance_id=advance_id,
            action=request.POST.get("action", ""),
            note=request.POST.get("note", ""),
        )
        messages.success(request, f"Advance {advance.pk} is {advance.get_status_display().lower()}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("financing-console-advance", advance_id=advance_id)
