"""Console nodes: the list, a node's page (agent report beside the registration, compute challenges, leases,
audit trail) and the staff actions verify / deverify / challenge / cordon / uncordon / drain (POST, CSRF)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from broker.selectors.console import node_audit, node_get_for_staff, node_leases, node_list_for_staff
from broker.services.console import node_cordon, node_drain, node_uncordon
from broker.views.console import not_found, staff_required
from broker.views.console_forms import DrainForm, NodeFilterForm, ReasonForm
from common.errors import DomainError, NotFound
from marketplace.models import ChallengeReason, Node
from marketplace.selectors.challenges import node_challenges
from marketplace.selectors.nodes import node_spec_comparison
from marketplace.services.challenge import node_challenge_issue
from marketplace.services.verification import node_deverify, node_verify


def _node(node_id: int) -> Node:
    try:
        return node_get_for_staff(node_id=node_id)
    except NotFound as exc:
        raise not_found(exc) from exc


def _reason(request: HttpRequest) -> str:
    form = ReasonForm(request.POST)
    return form.cleaned_data["reason"].strip() if form.is_valid() else ""


@staff_required
@require_GET
def nodes(request: HttpRequest) -> HttpResponse:
    form = NodeFilterForm(request.GET or None)
    return render(
        request, "console/nodes.html", {"filter_form": form, "nodes": node_list_for_staff(filters=form.filters())}
    )


@staff_required
@require_GET
def node_detail(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _node(node_id)
    return render(
        request,
        "console/node_detail.html",
        {
            "node": node,
            "comparison": node_spec_comparison(node=node),
            "leases": node_leases(node=node),
            "audit": node_audit(node=node),
            "drain_form": DrainForm(),
            "challenges": node_challenges(node=node),
        },
    )


@staff_required
@require_POST
def node_verify_view(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _node(node_id)
    try:
        node_verify(node=node, by=request.user)
    except DomainError as exc:
        messages.error(request, f"Not verified: {exc.message}")
    else:
        messages.success(request, f"Node {node.name} is verified.")
    return redirect("console:node_detail", node_id=node.pk)


@staff_required
@require_POST
def node_challenge_view(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _node(node_id)
    challenge, created = node_challenge_issue(node=node, reason=ChallengeReason.STAFF, by=request.user)
    if created:
        messages.success(request, f"Compute challenge #{challenge.pk} issued: {node.name}'s agent fetches it next.")
    else:
        messages.info(request, f"Challenge #{challenge.pk} is still open ({challenge.get_state_display().lower()}).")
    return redirect("console:node_detail", node_id=node.pk)


@staff_required
@require_POST
def node_deverify_view(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _node(node_id)
    node_deverify(node=node, by=request.user, reason=_reason(request))
    messages.success(request, f"Node {node.name} is no longer verified.")
    return redirect("console:node_detail", node_id=node.pk)


@staff_required
@require_POST
def node_cordon_view(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _node(node_id)
    if node_cordon(node_id=node.pk, by=request.user, reason=_reason(request)):
        messages.success(request, f"Node {node.name} is cordoned: no new leases; its current leases run on.")
    else:
        messages.info(request, f"Node {node.name} was already cordoned.")
    return redirect("console:node_detail", node_id=node.pk)


@staff_required
@require_POST
def node_uncordon_view(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _node(node_id)
    if node_uncordon(node_id=node.pk, by=request.user, reason=_reason(request)):
        messages.success(request, f"Node {node.name} takes new leases again.")
    else:
        messages.info(request, f"Node {node.name} was not cordoned.")
    return redirect("console:node_detail", node_id=node.pk)


@staff_required
@require_POST
def node_drain_view(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _node(node_id)
    form = DrainForm(request.POST)
    end_leases = bool(form.is_valid() and form.cleaned_data["end_leases"])
    result = node_drain(
        node_id=node.pk, by=request.user, end_leases=end_leases, reason=form.cleaned_data.get("reason", "") or ""
    )
    if end_leases:
        messages.success(
            request, f"Node {node.name} drained: {result.leases_ended} lease(s) ended, their jobs re-queued."
        )
    else:
        messages.success(
            request, f"Node {node.name} draining: cordoned; {result.leases_left} lease(s) run to their end."
        )
    return redirect("console:node_detail", node_id=node.pk)
