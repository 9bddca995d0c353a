"""Reads of a customer's jobs: list, detail (own jobs only), timeline, current lease, cost so far."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import models
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery, Sum

from billing.models import LeaseAccount
from broker.models import Job, JobEvent, Lease, LeaseState
from common.errors import NotFound
from marketplace.models import Customer, GPUModel

LIVE_LEASE_STATES = (LeaseState.RESERVED, LeaseState.ACTIVE)


def job_list(*, customer: Customer) -> QuerySet[Job]:
    """The customer's jobs, newest first, with models, events and leases prefetched and the cost so far
    annotated (`charged_micros`: one query for a page, not one per job)."""
    charged = (
        LeaseAccount.objects.filter(job_ref=OuterRef("pk"))
        .order_by()
        .values("job_ref")
        .annotate(total=Sum("charged_micros"))
        .values("total")
    )
    return (
        Job.objects.filter(customer=customer)
        .annotate(charged_micros=Subquery(charged))
        .prefetch_related(
            "gpu_models",
            Prefetch("events", queryset=JobEvent.objects.order_by("at", "id")),
            Prefetch("leases", queryset=Lease.objects.select_related("node", "node__gpu_model").order_by("-id")),
        )
        .order_by("-created_at", "-id")
    )


def job_relations_known(*, job: Job, gpu_models: list[GPUModel], events: list[JobEvent], leases: list[Lease]) -> None:
    """Fill `job`'s prefetch caches (as `job_list` would) with rows the caller already holds, e.g. a job it just
    booked: reading them afterwards costs no query."""
    _as_stored(job)
    cache = job.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, rows in (("gpu_models", gpu_models), ("events", events), ("leases", leases)):
        queryset = getattr(job, name).all()
        queryset._result_cache = list(rows)
        queryset._prefetch_done = True
        cache[name] = queryset


def _as_stored(job: Job) -> None:
    """Give decimal and float fields the form a read from the database has (16 → 16.0 for one decimal place)."""
    for field in Job._meta.concrete_fields:
        value = getattr(job, field.attname)
        if value is None:
            continue
        if isinstance(field, models.DecimalField):
            setattr(job, field.attname, Decimal(value).quantize(Decimal(1).scaleb(-field.decimal_places)))
        elif isinstance(field, models.FloatField):
            setattr(job, field.attname, float(value))


def job_get(*, customer: Customer, job_id: int | str) -> Job:
    """The customer's job `job_id`; NotFound (404) for a missing job or another customer's job."""
    try:
        pk = int(job_id)
    except (TypeError, ValueError):
        raise NotFound("No such job.") from None
    job = job_list(customer=customer).filter(pk=pk).first()
    if job is None:
        raise NotFound("No such job.")
    return job


def job_current_lease(*, job: Job) -> Lease | None:
    """The live (reserved or active) lease, else the most recent one while the job is matched/running."""
    leases = list(job.leases.all())
    live = [lease for lease in leases if lease.state in LIVE_LEASE_STATES]
    return live[0] if live else None


def job_cost_so_far(*, job: Job) -> int:
    """Micro-dollars charged for this job so far (settled usage); 0 until billing has settled any."""
    if hasattr(job, "charged_micros"):  # annotated by job_list
        return int(getattr(job, "charged_micros", 0) or 0)
    total = LeaseAccount.objects.filter(job_ref=job.pk).aggregate(total=Sum("charged_micros"))["total"]
    return int(total or 0)


@dataclass(frozen=True)
class JobView:
    job: Job
    lease: Lease | None
    cost_so_far_micros: int


def job_view(*, job: Job, cost_so_far_micros: int | None = None) -> JobView:
    """The job with its current lease and what it was charged so far (`cost_so_far_micros`, when the caller
    knows it, saves the query)."""
    cost = job_cost_so_far(job=job) if cost_so_far_micros is None else cost_so_far_micros
    return JobView(job=job, lease=job_current_lease(job=job), cost_so_far_micros=cost)
