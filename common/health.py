"""Health checks that `/healthz` runs, from the apps that own them (common imports no app).

An app registers a check from its `AppConfig.ready`:

    register_health_check(name="matching", check=matching_health)

A check returns `(ok, detail)`; one that raises counts as failed, with the exception as its detail. `/healthz`
answers 200 "ok" when the database, the Celery broker and every registered check are fine, else 503
"degraded" with each part's detail.
"""

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]
_CHECKS: dict[str, HealthCheck] = {}


def register_health_check(*, name: str, check: HealthCheck) -> None:
    """Add (or replace: `ready` may run more than once) the check called `name`."""
    _CHECKS[name] = check


def health_checks_run() -> dict[str, tuple[bool, str]]:
    """Every registered check's `(ok, detail)`, by name."""
    results: dict[str, tuple[bool, str]] = {}
    for name, check in sorted(_CHECKS.items()):
        try:
            ok, detail = check()
        except Exception as exc:
            log.exception("health check %s raised", name)
            ok, detail = False, f"check failed: {type(exc).__name__}: {exc}"
        results[name] = (bool(ok), str(detail))
    return results
