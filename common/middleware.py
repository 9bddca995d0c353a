"""Cross-cutting middleware: request id + request metrics, and security headers (CSP).

- `RequestContextMiddleware` (first in MIDDLEWARE): takes the caller's `X-Request-ID` (or makes one),
  puts it in the logging context, echoes it in the response, and records the request's latency, CPU time
  (of the serving thread) and status per view in `common.metrics` (Redis-backed when REDIS_URL, so all web
  processes add up).
- `SecurityHeadersMiddleware`: a Content-Security-Policy (Django 5.2 has none built in) and
  Permissions-Policy. X-Frame-Options, nosniff, Referrer-Policy and HSTS come from Django's own
  middleware and settings.
"""

import time
from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from common import metrics
from common.logging import request_id_clean, request_id_var

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _view_label(request: HttpRequest, response: HttpResponse) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name:
        return match.view_name
    if request.path.startswith(settings.STATIC_URL or "/static/"):
        return "static"
    return "unmatched"


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_clean(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        # Not reset on the way out: Django logs 4xx/5xx ("django.request") after the middleware chain
        # returns; the `request_finished` signal clears it (see `_request_finished`).
        request_id_var.set(request_id)
        started, cpu_started = time.perf_counter(), time.thread_time()
        response = self.get_response(request)
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
        response["X-Request-ID"] = request_id
        view = _view_label(request, response)
        metrics.request_observe(
            view=view, method=request.method or "", status=response.status_code, seconds=elapsed, cpu_seconds=cpu
        )
        return response


@receiver(request_finished, dispatch_uid="rigshift-request-id-clear")
def _request_finished(**kwargs: object) -> None:
    request_id_var.set(None)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy: str = getattr(settings, "RIGSHIFT_CSP", DEFAULT_CSP)
        # The API docs (Swagger UI from drf-spectacular-sidecar, started by a script URL) need no exception.
        self.overrides: dict[str, str] = getattr(settings, "RIGSHIFT_CSP_OVERRIDES", {})

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            policy = self.overrides.get(request.path, self.policy)
            if policy:
                response["Content-Security-Policy"] = policy
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response
