"""Is the matcher working? One answer for `/healthz` (registered in common.health) and `/metrics`.

Stalled: a job has been pending longer than `RIGSHIFT_MATCH_STALL_S` (default 120 s) and no match round has
succeeded in that time (rounds that failed are recorded with their error but do not count). A quiet market with
nothing pending is never stalled, and neither is a matcher an operator paused (the console's switch): a pause is
intended, and a 503 would take every web server out of its load balancer; the detail says it is paused.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Min
from django.utils import timezone

from broker.models import Job, JobState, MatchRound


@dataclass(frozen=True)
class MatchingHealth:
    stalled: bool
    threshold_s: int
    pending: int
    oldest_pending_s: float | None
    last_success_age_s: float | None
    failed_recent: int
    last_error: str
    paused: bool = False

    @property
    def detail(self) -> str:
        last = f"{self.pending} pending; last successful round {_age(self.last_success_age_s)}"
        if self.paused:
            return f"paused by an operator: {last}"
        if not self.stalled:
            return f"ok: {last}"
        error = f"; latest failure: {self.last_error[:200]}" if self.last_error else ""
        return (
            f"stalled: {self.pending} job(s) pending, the oldest for {self.oldest_pending_s or 0:.0f} s, and no "
            f"match round has succeeded in {self.threshold_s} s (last success {_age(self.last_success_age_s)}; "
            f"{self.failed_recent} failed round(s) since){error}"
        )


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s ago"


def matching_health_get(*, now: datetime | None = None) -> MatchingHealth:
    from broker.services.matching import matching_paused  # the services import this module's app, not it

    now = now or timezone.now()
    paused = matching_paused()
    threshold = int(getattr(settings, "RIGSHIFT_MATCH_STALL_S", 120))
    pending = Job.objects.filter(state=JobState.PENDING).aggregate(n=Count("id"), oldest=Min("created_at"))
    count, oldest = int(pending["n"] or 0), pending["oldest"]
    oldest_s = (now - oldest).total_seconds() if oldest is not None else None
    last_ok = MatchRound.objects.filter(status="ok", finished_at__isnull=False).aggregate(t=Max("finished_at"))["t"]
    last_ok_s = (now - last_ok).total_seconds() if last_ok is not None else None
    failed = MatchRound.objects.filter(status="failed")
    if last_ok is not None:
        failed = failed.filter(started_at__gte=last_ok)
    last_failed = failed.order_by("-id").values_list("error", flat=True).first() or ""
    stalled = (
        not paused
        and oldest_s is not None
        and oldest_s > threshold
        and (last_ok is None or last_ok < now - timedelta(seconds=threshold))
    )
    return MatchingHealth(
        stalled=stalled,
        threshold_s=threshold,
        pending=count,
        oldest_pending_s=oldest_s,
        last_success_age_s=last_ok_s,
        failed_recent=failed.count(),
        last_error=last_failed,
        paused=paused,
    )


def matching_health_check() -> tuple[bool, str]:
    """The `/healthz` check (common.health registry)."""
    health = matching_health_get()
    return not health.stalled, health.detail
