"""Reads of a customer's jobs: list, detail (own jobs only), timeline, current lease, cost so far."""

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet, Sum

from billing.models import LeaseAccount
from broker.models import Job, JobEvent, Lease, LeaseState
from common.errors import NotFound
from marketplace.models import Customer

LIVE_LEASE_STATES = (LeaseState.RESERVED, LeaseState.ACTIVE)


def job_list(*, customer: Customer) -> QuerySet[Job]:
    """The customer's jobs, newest first, with models, events and leases prefetched."""
    return (
        Job.objects.filter(customer=customer)
        .prefetch_related(
            "gpu_models",
            Prefetch("events", queryset=JobEvent.objects.order_by("at", "id")),
            Prefetch("leases", queryset=Lease.objects.select_related("node", "node__gpu_model").order_by("-id")),
        )
        .order_by("-created_at", "-id")
    )


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
    total = LeaseAccount.objects.filter(job_ref=job.pk).aggregate(total=Sum("charged_micros"))["total"]
    return int(total or 0)


@dataclass(frozen=True)
class JobView:
    job: Job
    lease: Lease | None
    cost_so_far_micros: int


def job_view(*, job: Job) -> JobView:
    return JobView(job=job, lease=job_current_lease(job=job), cost_so_far_micros=job_cost_so_far(job=job))
