"""`GET /metrics`: Prometheus text format, for the scraper only.

Access: with `METRICS_TOKEN` set, the request must carry `Authorization: Bearer <METRICS_TOKEN>`;
without it, only loopback clients (127.0.0.1, ::1) are answered — put the scraper on the same host or
set the token. Anything else gets 403 with a message saying what is missing.
"""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from common.metrics import metrics_render

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def metrics_allowed(request: HttpRequest) -> bool:
    token: str = getattr(settings, "METRICS_TOKEN", "") or ""
    if token:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    return request.META.get("REMOTE_ADDR", "") in LOOPBACK


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponseForbidden(
            "Metrics need 'Authorization: Bearer <METRICS_TOKEN>' (or, with METRICS_TOKEN unset, a loopback client).\n",
            content_type="text/plain",
        )
    response = HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
