"""Rate limits for the endpoints attackers hammer: login, token, signup, and the agent API.

One table in settings, `RIGSHIFT_RATE_LIMITS`, maps a *scope* to a rate ("20/min"), and
`RIGSHIFT_RATE_LIMIT_VIEWS` maps URL names to a scope. Two mechanisms read it:

- `ScopedViewThrottle`, in DRF's DEFAULT_THROTTLE_CLASSES: API views whose URL name is in the table
  are throttled (per client IP, or per node token for the `agent` scope); other API views are not.
- `PageRateLimitMiddleware`: the same for POSTs to server-rendered pages (login, signups).

A refused request gets 429 with `Retry-After`. Counters live in Redis with REDIS_URL (every web process
shares them; one round trip per request on the process's shared client), else in the Django cache. Keys
are namespaced so that tests can start fresh
(`ratelimit_namespace_reset`).
"""

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from common.cache import redis_client, redis_key

_namespace = "rl1"

DEFAULT_RATES: dict[str, str] = {"login": "20/min", "signup": "20/hour", "agent": "600/min"}
DEFAULT_VIEWS: dict[str, str] = {
    "login": "login",
    "admin:login": "login",
    "api-token": "login",
    "api-provider-signup": "signup",
    "api-customer-signup": "signup",
    "provider:signup": "signup",
    "app:signup": "signup",
    "lender:signup": "signup",
    "lender-signup": "signup",
    "api-lender-signup": "signup",
    "agent-register": "agent",
    "agent-heartbeat": "agent",
    "agent-leases": "agent",
}
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400}


def ratelimit_namespace_reset() -> None:
    """Start every counter from zero (tests); old keys expire on their own."""
    global _namespace
    _namespace = f"rl-{uuid.uuid4().hex[:12]}"


def cache_namespace() -> str:
    return _namespace


def rate_parse(rate: str) -> tuple[int, int]:
    """'20/min' -> (20, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().lower()]


def scope_for(view_name: str | None) -> str | None:
    if not view_name:
        return None
    views: dict[str, str] = getattr(settings, "RIGSHIFT_RATE_LIMIT_VIEWS", DEFAULT_VIEWS)
    return views.get(view_name)


def rate_for(scope: str) -> tuple[int, int] | None:
    rates: dict[str, str | None] = getattr(settings, "RIGSHIFT_RATE_LIMITS", DEFAULT_RATES)
    rate = rates.get(scope)
    return rate_parse(rate) if rate else None


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR; behind a proxy, the last X-Forwarded-For hop added by the trusted proxy count."""
    proxies: int = getattr(settings, "RIGSHIFT_TRUSTED_PROXY_COUNT", 0)
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return str(request.META.get("REMOTE_ADDR", "unknown"))


_INCR_EXPIRE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
_scripts: dict[int, Any] = {}


def _count(key: str, timeout: int) -> int:
    """Add one to the window's counter and return it: with Redis one round trip (INCR and, for a new
    window, EXPIRE in one Lua script on the process's shared client); else through the Django cache."""
    client = redis_client()
    if client is not None:
        script = _scripts.get(id(client))
        if script is None:
            script = _scripts[id(client)] = client.register_script(_INCR_EXPIRE)
        return int(script(keys=[key], args=[timeout]))
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=timeout)
        return 1


def hit(*, scope: str, ident: str, now: float | None = None) -> float | None:
    """Count one request of `ident` in `scope`; None if allowed, else the seconds to wait.

    Fixed windows keyed by window number: one atomic increment per request (one Redis round trip).
    """
    rate = rate_for(scope)
    if rate is None:
        return None
    limit, period = rate
    now = time.time() if now is None else now
    window = int(now // period)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
    count = _count(redis_key(_namespace, scope, digest, str(window)), period + 1)
    if count > limit:
        return max(1.0, (window + 1) * period - now)
    return None


class ScopedViewThrottle(BaseThrottle):
    """DRF throttle: the view's URL name picks the scope; the agent scope counts per node token."""

    def __init__(self) -> None:
        self.wait_s: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        match = getattr(request._request, "resolver_match", None)
        scope = scope_for(match.view_name if match else None)
        if scope is None:
            return True
        if scope == "agent" and request.auth is not None and hasattr(request.auth, "pk"):
            ident = f"node:{request.auth.pk}"
        else:
            ident = f"ip:{client_ip(request._request)}"
        self.wait_s = hit(scope=scope, ident=ident)
        return self.wait_s is None

    def wait(self) -> float | None:
        return self.wait_s


def too_many(wait_s: float, what: str) -> HttpResponse:
    seconds = int(wait_s + 0.999)
    response = HttpResponse(
        f"Too many {what}. Try again in {seconds} seconds.\n", status=429, content_type="text/plain; charset=utf-8"
    )
    response["Retry-After"] = str(seconds)
    return response


class PageRateLimitMiddleware:
    """Rate-limits POSTs to the pages named in RIGSHIFT_RATE_LIMIT_VIEWS (login and signup forms)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if request.method != "POST" or request.path.startswith("/api/"):
            return None  # API views are throttled by ScopedViewThrottle
        match = request.resolver_match
        scope = scope_for(match.view_name if match else None)
        if scope is None:
            return None
        wait_s = hit(scope=scope, ident=f"ip:{client_ip(request)}")
        if wait_s is None:
            return None
        return too_many(wait_s, "login attempts" if scope == "login" else "sign-ups from your address")
