"""Account lockout: after `RIGSHIFT_LOCKOUT_ATTEMPTS` failed logins for one username within
`RIGSHIFT_LOCKOUT_WINDOW_S`, that username may not log in for `RIGSHIFT_LOCKOUT_COOLDOWN_S`.

- Failures are counted from Django's `user_login_failed` signal, so the login page, the admin login
  and the API token endpoint (all call `authenticate`) count alike; a successful login clears them.
- `LockoutMiddleware` answers a POST to a login view (page, admin, `api-token`) for a locked
  username with 429, `Retry-After` and a message saying when to retry — before the password is
  even checked, so a correct guess during the cooling period does not get in either.
- `LockoutBackend` (first in AUTHENTICATION_BACKENDS) refuses locked usernames for any other
  caller of `authenticate`.

State lives in the Django cache (Redis with REDIS_URL), keyed by a hash of the lower-cased username.
"""

import hashlib
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, RequestDataTooBig
from django.dispatch import receiver
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from common import ratelimit
from common.errors import DomainError
from common.json_body import json_parse

LOGIN_VIEWS = ("login", "admin:login", "api-token")


def _attempts() -> int:
    return int(getattr(settings, "RIGSHIFT_LOCKOUT_ATTEMPTS", 5))


def _window() -> int:
    return int(getattr(settings, "RIGSHIFT_LOCKOUT_WINDOW_S", 900))


def _cooldown() -> int:
    return int(getattr(settings, "RIGSHIFT_LOCKOUT_COOLDOWN_S", 900))


def _key(kind: str, username: str) -> str:
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"{ratelimit.cache_namespace()}:lockout:{kind}:{digest}"


def lockout_remaining(*, username: str) -> float:
    """Seconds until `username` may try again; 0 when not locked."""
    if not username:
        return 0.0
    until = cache.get(_key("until", username))
    if until is None:
        return 0.0
    return max(0.0, float(until) - time.time())


def login_failure_record(*, username: str) -> bool:
    """Count one failed login; returns True when this failure locked the account."""
    if not username:
        return False
    key = _key("fails", username)
    if cache.add(key, 1, timeout=_window()):
        fails = 1
    else:
        try:
            fails = cache.incr(key)
        except ValueError:
            cache.add(key, 1, timeout=_window())
            fails = 1
    if fails >= _attempts():
        cache.set(_key("until", username), time.time() + _cooldown(), timeout=_cooldown() + 1)
        cache.delete(key)
        return True
    return False


def login_success_record(*, username: str) -> None:
    cache.delete_many([_key("fails", username), _key("until", username)])


@receiver(user_login_failed, dispatch_uid="rigshift-lockout-failed")
def _on_login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kw: Any) -> None:
    username = credentials.get("username")
    if isinstance(username, str) and lockout_remaining(username=username) == 0:
        login_failure_record(username=username)


@receiver(user_logged_in, dispatch_uid="rigshift-lockout-success")
def _on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kw: Any) -> None:
    login_success_record(username=user.get_username())


def lockout_message(seconds: float) -> str:
    minutes = max(1, int(seconds + 59) // 60)
    return (
        f"Too many failed logins for this account. It is locked for {minutes} more minute"
        f"{'s' if minutes != 1 else ''}; try again later or reset your password."
    )


class LockoutBackend(ModelBackend):
    """Refuses locked usernames (Django then reports a failed login); otherwise the model backend."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kw: Any
    ) -> Any:
        if username and lockout_remaining(username=username) > 0:
            raise PermissionDenied(lockout_message(lockout_remaining(username=username)))
        return super().authenticate(request, username=username, password=password, **kw)


def _posted_username(request: HttpRequest) -> str:
    if request.content_type == "application/json":
        try:
            data = json_parse(request.body or b"{}")
        except (DomainError, RequestDataTooBig):
            return ""
        value = data.get("username") if isinstance(data, dict) else None
        return value if isinstance(value, str) else ""
    value = request.POST.get("username", "")
    return value if isinstance(value, str) else ""


def _login_page(request: HttpRequest, message: str) -> HttpResponse:
    """The login page again, with the lockout message where a wrong password's message would be."""
    form = AuthenticationForm(request, initial={"username": _posted_username(request)})
    form._errors = ErrorDict({NON_FIELD_ERRORS: form.error_class([message])})  # type: ignore[attr-defined]
    next_url = request.POST.get("next", "")
    return render(request, "registration/login.html", {"form": form, "next": next_url}, status=429)


class LockoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        if request.method != "POST" or match is None or match.view_name not in LOGIN_VIEWS:
            return None
        remaining = lockout_remaining(username=_posted_username(request))
        if remaining <= 0:
            return None
        seconds = int(remaining + 0.999)
        message = lockout_message(remaining)
        response: HttpResponse
        if match.view_name == "api-token":
            response = JsonResponse({"detail": message, "code": "account_locked"}, status=429)
        elif match.view_name == "login":
            response = _login_page(request, message)
        else:
            response = HttpResponse(message + "\n", status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(seconds)
        return response
