"""A database that is briefly unreachable answers 503 + Retry-After, never 500.

A connection the server dropped (restart, failover, `pg_terminate_backend`, a pooler recycling it) or an SQLite
file locked past its busy timeout raises `OperationalError`/`InterfaceError` from whatever query meets it. Nothing
was committed by the failed request (its transaction died with the connection), so the client may simply retry:
`DatabaseUnavailableMiddleware` (last in MIDDLEWARE, so its `process_exception` sees view errors first) answers
503 with `Retry-After` and a clear message (JSON under /api/), and logs the error. Django's request_finished
handler then discards the broken connection (`close_if_unusable_or_obsolete`), so the next request gets a fresh
one. Errors that are bugs, not outages (an SQLite "no such table"), keep their 500.
"""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2
MESSAGE = "The database is briefly unavailable; nothing was saved. Please retry in a moment."
# SQLite raises OperationalError for schema bugs too: only these mean "busy, retry".
SQLITE_TRANSIENT = ("locked", "busy", "disk i/o error", "unable to open database")


def database_error_is_transient(*, exc: BaseException) -> bool:
    """True for a lost connection or a busy database: the request may be retried as it was."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if connection.vendor == "sqlite":
        return any(word in str(exc).lower() for word in SQLITE_TRANSIENT)
    return True


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_error_is_transient(exc=exception):
            return None
        log.warning("database unavailable during %s %s", request.method, request.path, exc_info=exception)
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": MESSAGE, "code": "database_unavailable"}, status=503)
        else:
            response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
