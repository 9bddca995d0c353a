"""Console job page: requirements, timeline, leases, explanation, and manual assignment (staff only)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from broker.models import JobState, PriceOffer
from broker.selectors.console import (
    job_assignment_candidates,
    job_audit,
    job_explanation,
    job_get_for_staff,
    job_requirements,
)
from broker.services.console import job_assign_manual
from broker.views.console import not_found, staff_required
from broker.views.console_forms import ManualAssignForm
from common.errors import Conflict, DomainError, NotFound


@staff_required
@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    try:
        job = job_get_for_staff(job_id=job_id)
    except NotFound as exc:
        raise not_found(exc) from exc
    candidates = []
    if job.state == JobState.PENDING:
        try:
            candidates = job_assignment_candidates(job=job)
        except Conflict:  # placed meanwhile
            candidates = []
    return render(
        request,
        "console/job_detail.html",
        {
            "job": job,
            "requirements": job_requirements(job=job),
            "explanation": job_explanation(job=job),
            "events": list(job.events.all()),
            "leases": list(job.leases.all()),
            "candidates": candidates,
            "form": ManualAssignForm(),
            "audit": job_audit(job=job),
        },
    )


@staff_required
@require_POST
def job_assign(request: HttpRequest, job_id: int) -> HttpResponse:
    """Manual assignment: checked against the job's hard constraints; an override needs a reason."""
    form = ManualAssignForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a node to assign the job to.")
        return redirect("console:job_detail", job_id=job_id)
    try:
        lease = job_assign_manual(
            job_id=job_id,
            node_id=form.cleaned_data["node"],
            by=request.user,
            override=form.cleaned_data["override"],
            reason=form.cleaned_data["reason"],
        )
    except NotFound as exc:
        raise not_found(exc) from exc
    except DomainError as exc:
        messages.error(request, f"Not assigned: {exc.message}")
    else:
        if isinstance(lease, PriceOffer):
            messages.warning(
                request,
                f"Not leased yet: the price is below the provider's ask, so offer #{lease.pk} was sent to the "
                "provider; the job is leased only if the provider accepts it.",
            )
        else:
            messages.success(
                request,
                f"Job {job_id} leased on node {lease.node_id}, GPU slot(s) {', '.join(map(str, lease.gpu_slots))}.",
            )
    return redirect("console:job_detail", job_id=job_id)
