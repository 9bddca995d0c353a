"""Console flags: usage the broker capped or refused and nodes whose hardware claims changed (staff only)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from broker.selectors.flags import staff_flags
from broker.views.console import staff_required


@staff_required
@require_GET
def flags(request: HttpRequest) -> HttpResponse:
    anomalies, changes = staff_flags()
    return render(request, "console/flags.html", {"anomalies": anomalies, "changes": changes})
