"""Billing pages: customer invoices (list, printable detail, CSV) and the provider earnings statement."""

import csv
from collections.abc import Callable
from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from billing.selectors.invoices import invoice_get, invoice_list, provider_statement
from billing.services.invoices import invoice_on_demand, invoice_reconcile, month_bounds
from billing.services.payouts import provider_payout_onboard
from common.decorators import role_required as common_role_required
from common.errors import DomainError, NotFound
from common.money import format_amount_plain, format_price_plain, from_micros

View = Callable[..., HttpResponse]
CSV_HEADER = [
    "invoice",
    "period_start",
    "period_end",
    "kind",
    "lease",
    "description",
    "gpus",
    "gpu_model",
    "seconds",
    "rate_per_gpu_hour_usd",
    "amount_usd",
    "amount_usd_exact",  # micro-dollar precision, for reconciling lines with the total
]


def role_required(role: str) -> Callable[[View], View]:
    """Anonymous → login; logged in without the role's profile → 403."""
    return common_role_required(
        allowed=lambda user: hasattr(user, role), message=f"Only {role} accounts can see this page."
    )


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@role_required("customer")
@require_http_methods(["GET", "POST"])
def invoices(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        invoice = invoice_on_demand(customer_user=_user(request))
        messages.success(request, f"Statement {invoice.number} created.")
        return redirect("billing-invoice", invoice_id=invoice.pk)
    return render(request, "billing/invoice_list.html", {"invoices": invoice_list(customer_user=_user(request))})


@role_required("customer")
@require_http_methods(["GET"])
def invoice_detail(request: HttpRequest, invoice_id: int) -> HttpResponse:
    try:
        invoice = invoice_get(customer_user=_user(request), invoice_id=invoice_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number}.csv"'
        writer = csv.writer(response)
        writer.writerow(CSV_HEADER)
        for line in invoice.lines.all():
            writer.writerow(
                [
                    invoice.number,
                    invoice.period_start.isoformat(),
                    invoice.period_end.isoformat(),
                    line.kind,
                    line.lease_ref or "",
                    line.description,
                    line.gpu_count or "",
                    line.gpu_model_name,
                    line.seconds if line.seconds is not None else "",
                    format_price_plain(micros=line.rate_micros) if line.rate_micros is not None else "",
                    format_amount_plain(micros=line.amount_micros),
                    from_micros(micros=line.amount_micros),
                ]
            )
        total = invoice.total_cents * 10_000
        blank = ["", "", "", ""]
        total_cells = [format_amount_plain(micros=total), from_micros(micros=total)]
        writer.writerow([invoice.number, "", "", "total", "", "Total (rounded to cents)", *blank, *total_cells])
        return response
    context = {"invoice": invoice, "lines": list(invoice.lines.all()), "problems": invoice_reconcile(invoice=invoice)}
    return render(request, "billing/invoice_detail.html", context)


@role_required("provider")
@require_http_methods(["GET", "POST"])
def provider_earnings(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method == "POST":
        try:
            url = provider_payout_onboard(provider_user=user)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("billing-provider-earnings")
        if url.startswith("/"):
            messages.success(request, "Payout account ready.")
        return redirect(url)
    now = datetime.now(tz=UTC)
    month = request.GET.get("month", f"{now:%Y-%m}")
    try:
        year, mon = (int(part) for part in month.split("-", 1))
        start, end = month_bounds(year=year, month=mon)
    except (ValueError, DomainError):
        messages.error(request, "month must look like 2026-11")
        start, end = month_bounds(year=now.year, month=now.month)
    statement = provider_statement(provider_user=user, period_start=start, period_end=end)
    return render(
        request,
        "billing/provider_earnings.html",
        {"s": statement, "month": f"{start:%Y-%m}", "provider": user.provider},
    )
