"""Home page, login with a role-aware landing, the styled error pages, favicon and health check."""

from pathlib import Path

from django.contrib.auth.views import LoginView
from django.db import connection
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from common.health import health_checks_run
from common.portals import portal_for_path, portals_of, role_landing, signup_portals
from config.celery import app as celery_app

FAVICON = Path(__file__).resolve().parent.parent / "static" / "favicon.ico"


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"own_portals": portals_of(request.user)})


class RoleLoginView(LoginView):
    """The login page with sign-up links; without `next`, each role lands on its own portal."""

    def get_default_redirect_url(self) -> str:
        return role_landing(self.request.user)

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        context = super().get_context_data(**kwargs)
        context["signup_portals"] = signup_portals()
        context["next_portal"] = portal_for_path(str(context.get("next") or ""))
        return context


def _api_error(*, status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


def _error_page(request: HttpRequest, *, template: str, status: int, context: dict[str, object]) -> HttpResponse:
    portal = portal_for_path(request.path)
    base = {"portal": portal, "own_portals": portals_of(request.user), "signup_portals": signup_portals()}
    return render(request, template, {**base, **context}, status=status)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403: which portal this is, the portals the user may open, and how to get the role it needs."""
    if request.path.startswith("/api/"):
        return _api_error(status=403, detail="You do not have permission to do this.", code="forbidden")
    message = str(exception) if exception is not None and str(exception) else ""
    return _error_page(request, template="403.html", status=403, context={"message": message})


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 without any debug output (no URL patterns, no exception text)."""
    if request.path.startswith("/api/"):
        return _api_error(status=404, detail="Not found.", code="not_found")
    return _error_page(request, template="404.html", status=404, context={})


def server_error(request: HttpRequest) -> HttpResponse:
    """500: a static page (no database, no user: whatever failed may fail again)."""
    if request.path.startswith("/api/"):
        return _api_error(status=500, detail="Server error; it has been logged.", code="server_error")
    return HttpResponse(loader.get_template("500.html").render(), status=500)


@require_safe
@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> FileResponse:
    """/favicon.ico, for browsers and tools that ask for it there (pages link the static copy)."""
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True, connection.vendor
    except Exception as exc:  # noqa: BLE001 — reported, not raised
        return False, str(exc)[:200]


def _broker_ok() -> tuple[bool, str]:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            return True, conn.transport_cls if isinstance(conn.transport_cls, str) else "connected"
    except Exception as exc:  # noqa: BLE001
        return False, str(exc)[:200]


@require_safe
def healthz_live(request: HttpRequest) -> JsonResponse:
    """Public liveness only (the process answers; checks nothing else): the cheapest view behind the whole
    middleware stack, which `bench.hotpaths` and `bench.load` use as the floor a request costs."""
    return JsonResponse({"status": "ok"})


def healthz(request: HttpRequest) -> JsonResponse:
    """Public liveness/readiness: 200 when the database, the Celery broker and every check the apps registered
    (common/health.py: the matcher, for one) are fine, else 503 "degraded" naming what is not."""
    db_ok, db_detail = _database_ok()
    broker_ok, broker_detail = _broker_ok()
    checks = health_checks_run() if db_ok else {}
    ok = db_ok and broker_ok and all(passed for passed, _ in checks.values())
    return JsonResponse(
        {
            "status": "ok" if ok else "degraded",
            "database": {"ok": db_ok, "detail": db_detail},
            "broker": {"ok": broker_ok, "detail": broker_detail},
            **{name: {"ok": passed, "detail": detail} for name, (passed, detail) in checks.items()},
        },
        status=200 if ok else 503,
    )
