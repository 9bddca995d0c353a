"""Reads of a job's workload log: the job's customer and staff only (anyone else: 404)."""

from dataclasses import dataclass
from typing import Any

from broker.models import Job, JobLogLine
from common.errors import NotFound, ValidationFailed

LOG_PAGE_MAX = 1000


def job_for_reader(*, user: Any, job_id: int | str) -> Job:
    """Job `job_id` when `user` is its customer or staff; NotFound otherwise (no hint that it exists)."""
    try:
        pk = int(job_id)
    except (TypeError, ValueError):
        raise NotFound("No such job.") from None
    qs = Job.objects.all()
    if not getattr(user, "is_staff", False):
        customer = getattr(user, "customer", None)
        if customer is None:
            raise NotFound("No such job.")
        qs = qs.filter(customer=customer)
    job = qs.filter(pk=pk).first()
    if job is None:
        raise NotFound("No such job.")
    return job


@dataclass(frozen=True)
class LogPage:
    lines: list[dict[str, Any]]
    next: int  # pass as `after` to read on


def parse_after(value: object) -> int:
    """The `after` query value: a non-negative integer (absent: 0)."""
    if value in (None, ""):
        return 0
    try:
        after = int(str(value))
    except ValueError:
        raise ValidationFailed("after must be a non-negative integer (the `next` of the previous page).") from None
    if after < 0 or after > 2**62:
        raise ValidationFailed("after must be a non-negative integer (the `next` of the previous page).")
    return after


def job_log_page(*, job: Job, after: int = 0, limit: int = LOG_PAGE_MAX) -> LogPage:
    """Lines of the job's log with seq > `after`, oldest first, at most `limit`; `next` is the last seq read
    (or `after` when there is nothing new). A line's seq is its order on the server, across the job's leases."""
    rows = list(
        JobLogLine.objects.filter(job_id=job.pk, id__gt=after)
        .order_by("id")
        .values("id", "at", "stream", "text")[: max(1, min(limit, LOG_PAGE_MAX))]
    )
    lines = [{"seq": r["id"], "at": r["at"], "stream": r["stream"], "text": r["text"]} for r in rows]
    return LogPage(lines=lines, next=int(rows[-1]["id"]) if rows else after)
