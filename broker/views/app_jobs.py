"""Customer portal jobs: the booking form with a live quote, the jobs list, the job page, cancel.

Thin: parse the form, call one service or selector, render. Another customer's job is a 404.
"""

import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from broker.forms import JobBookingForm, form_add_domain_errors, form_errors_text, form_initial_from_query
from broker.jobspec import PAYLOAD_KEYS, QUOTE_KEYS
from broker.models import TERMINAL_JOB_STATES, Job
from broker.selectors.connect import job_connect
from broker.selectors.customer_portal import wallet_low_balance
from broker.selectors.job_logs import job_log_page, parse_after
from broker.selectors.jobs import job_get, job_list, job_view
from broker.services.explain import job_explanation_text
from broker.services.jobs import job_book, job_cancel
from broker.services.quotes import job_quote
from broker.views.app import customer_of, customer_required
from broker.workload_templates import TEMPLATES
from common.errors import DomainError, NotFound

POLL_SECONDS = 5
LOG_POLL_SECONDS = 2
LOG_PAGE_SHOWN = 500


def _own_job(request: HttpRequest, job_id: int) -> Job:
    try:
        return job_get(customer=customer_of(request), job_id=job_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@customer_required
def jobs(request: HttpRequest) -> HttpResponse:
    return render(request, "app/jobs.html", {"jobs": job_list(customer=customer_of(request))})


@customer_required
@require_http_methods(["GET", "POST"])
def job_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = JobBookingForm(request.POST)
        spec = form.spec(booking=True)
        if spec is not None:
            key = (request.POST.get("idempotency_key") or "").strip() or None
            try:
                job = job_book(customer=customer_of(request), data=spec, idempotency_key=key)
            except DomainError as exc:
                form_add_domain_errors(form, exc)
            else:
                messages.success(request, f"Job #{job.pk} booked; its maximum cost is held in escrow.")
                return redirect("app:job_detail", job_id=job.pk)
        context = {
            "form": form,
            "quote": None,
            "idempotency_key": request.POST.get("idempotency_key", ""),
            "low_balance": wallet_low_balance(customer=customer_of(request)),
            "templates": TEMPLATES,
        }
        return render(request, "app/job_new.html", context, status=400)
    # GET: prefill from the search page's "Book" links (?gpu_models=…&gpu_count=…).
    initial = form_initial_from_query(form_class=JobBookingForm, query=request.GET)
    if request.GET.get("verified_only") in ("0", "false"):  # booking an unverified offer from the search page
        initial["verified_only"] = False
    form = JobBookingForm(initial=initial)
    # A fresh key per form: a double-submitted form books once.
    context = {
        "form": form,
        "quote": None,
        "idempotency_key": uuid.uuid4().hex,
        "low_balance": wallet_low_balance(customer=customer_of(request)),
        "templates": TEMPLATES,
    }
    return render(request, "app/job_new.html", context)


@customer_required
@require_POST
def job_quote_partial(request: HttpRequest) -> HttpResponse:
    """The live quote box (htmx target): what the form's requirements would match, cost and hold."""
    form = JobBookingForm(request.POST)
    spec = form.spec(booking=False)  # a quote needs no workload or name: their errors wait for the booking
    error = form_errors_text(form, skip=set(PAYLOAD_KEYS) - set(QUOTE_KEYS)) if spec is None else ""
    quote = None
    if spec is not None:
        try:
            quote = job_quote(customer=customer_of(request), requirements=spec)
        except DomainError as exc:
            error = exc.message
    return render(request, "app/_quote.html", {"quote": quote, "error": error})


def _job_context(job: Job) -> dict[str, Any]:
    view = job_view(job=job)
    return {
        "job": job,
        "lease": view.lease,
        "connect": job_connect(job=job, lease=view.lease),
        "cost_so_far_micros": view.cost_so_far_micros,
        "explanation": job_explanation_text(job=job),
        "events": list(job.events.all()),
        "terminal": job.state in TERMINAL_JOB_STATES,
        "poll_seconds": POLL_SECONDS,
    }


@customer_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _own_job(request, job_id)
    return render(request, "app/job_detail.html", _job_context(job))


@customer_required
def job_status_partial(request: HttpRequest, job_id: int) -> HttpResponse:
    """The job page's live part (state, lease, cost, timeline), polled by htmx until the job ends."""
    job = _own_job(request, job_id)
    return render(request, "app/_job_status.html", _job_context(job))


@customer_required
def job_logs_partial(request: HttpRequest, job_id: int) -> HttpResponse:
    """The job page's log: the lines after `?after=`, then the poller that asks for the next ones (htmx)."""
    job = _own_job(request, job_id)
    try:
        after = parse_after(request.GET.get("after"))
    except DomainError as exc:
        return HttpResponse(exc.message, status=400)
    page = job_log_page(job=job, after=after, limit=LOG_PAGE_SHOWN)
    context = {"job": job, "lines": page.lines, "next": page.next, "follow": job.state not in TERMINAL_JOB_STATES}
    context["follow"] = context["follow"] or len(page.lines) == LOG_PAGE_SHOWN
    return render(request, "app/_job_log.html", {**context, "poll_seconds": LOG_POLL_SECONDS})


@customer_required
@require_POST
def job_cancel_view(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _own_job(request, job_id)
    try:
        cancelled = job_cancel(job=job, customer=customer_of(request))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Job #{cancelled.pk} cancelled; unused escrow returned to your wallet.")
    return redirect("app:job_detail", job_id=job.pk)
