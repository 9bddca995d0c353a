"""Bookings: book a job (escrow held in the same transaction, idempotent per key) and cancel it."""

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from billing.errors import InsufficientFunds
from billing.models import LeaseAccount, LeaseAccountStatus
from billing.services.settlement import lease_settle_final
from billing.services.wallet import escrow_hold, escrow_release
from broker import dispatch
from broker.jobspec import JobSpec
from broker.models import TERMINAL_JOB_STATES, Job, JobEvent, JobState, Lease, LeaseState
from broker.selectors.jobs import job_cost_so_far, job_relations_known
from broker.selectors.requirements import pinned_node_check, requirements_check_possible
from broker.services.job_notify import job_events_notify
from broker.services.jobs_state import job_transition
from broker.services.leases import lease_end
from common.errors import Conflict, NotFound, PaymentRequired, ValidationFailed
from common.money import format_rate, format_usd, from_micros
from marketplace.models import Customer, GPUModel

MAX_IDEMPOTENCY_KEY = 200


def _spec(data: JobSpec | Mapping[str, Any]) -> JobSpec:
    """The booking's JobSpec: as built by the API, portal or CLI payload, or parsed here from a payload."""
    if isinstance(data, JobSpec):
        data.ensure_bookable()
        return data
    return JobSpec.from_payload(data, booking=True)


def _replay(*, customer: Customer, key: str, fingerprint: str) -> Job | None:
    existing = Job.objects.filter(customer=customer, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint and existing.request_fingerprint != fingerprint:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for a different booking (job {existing.pk}); "
            "use a new key for a new booking.",
            code="idempotency_key_reused",
            details={"job_id": existing.pk},
        )
    return existing


def _market_checks(spec: JobSpec) -> None:
    """Requirements some listed node can meet (400), and a booked-from-offer node still free (409)."""
    requirements_check_possible(spec=spec)
    pinned_node_check(spec=spec)


def job_book_ex(
    *, customer: Customer, data: JobSpec | Mapping[str, Any], idempotency_key: str | None = None
) -> tuple[Job, bool]:
    """Like job_book; also says whether this call created the job (False for an idempotent replay)."""
    key = (idempotency_key or "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(f"The Idempotency-Key header is at most {MAX_IDEMPOTENCY_KEY} characters.")
    spec = _spec(data)
    fingerprint = spec.fingerprint()
    if key:
        existing = _replay(customer=customer, key=key, fingerprint=fingerprint)
        if existing is not None:
            return existing, False
    _market_checks(spec)
    hold = spec.max_cost_micros
    assert hold is not None  # a booking always has a price limit and a duration
    user = customer.user
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    job = Job.objects.create(
                        customer=customer,
                        idempotency_key=key,
                        request_fingerprint=fingerprint,
                        held_micros=hold,
                        **spec.to_model_fields(),
                    )
            except IntegrityError:
                # A concurrent request with the same key committed first: return its job.
                existing = _replay(customer=customer, key=key, fingerprint=fingerprint) if key else None
                if existing is None:
                    raise
                return existing, False
            models: list[GPUModel] = []
            if spec.requirements.gpu_models:
                models = list(GPUModel.objects.filter(slug__in=spec.requirements.gpu_models))
                job.gpu_models.set(models)
            if hold > 0:
                escrow_hold(
                    user=user, amount_micros=hold, key=f"job:{job.pk}:hold", memo=f"Escrow for job {job.pk} {job.name}"
                )
            event = JobEvent.objects.create(
                job=job,
                from_state="",
                to_state=JobState.PENDING,
                note=f"booked; {format_usd(micros=hold)} held in escrow",
            )
            job_events_notify(events=[event], owners={job.pk: customer.user_id})
            # what the caller shows next is known: no need to read the job back
            job_relations_known(job=job, gpu_models=models, events=[event], leases=[])
            dispatch.match_round_soon()  # after commit; the beat round runs anyway
    except InsufficientFunds as exc:
        raise _cannot_cover(spec=spec, hold=hold, shortfall=exc.shortfall_micros) from None
    return job, True


def _cannot_cover(*, spec: JobSpec, hold: int, shortfall: int) -> PaymentRequired:
    """The 402 of a booking the wallet cannot hold: what it holds, how, and the shortfall."""
    limit, gpus, seconds = spec.price_limit_micros or 0, spec.requirements.gpu_count, spec.terms.duration_seconds
    return PaymentRequired(
        f"Your wallet cannot cover this booking: it holds up to {format_usd(micros=hold)} "
        f"({format_rate(micros=limit, unit='GPU-hour')} × {gpus} GPU(s) × "
        f"{seconds or 0:,} s); you are short by {format_usd(micros=shortfall)}. Top up your wallet.",
        details={
            "shortfall": format(from_micros(micros=shortfall), "f"),
            "shortfall_micros": shortfall,
            "required": format(from_micros(micros=hold), "f"),
        },
    )


def job_book(*, customer: Customer, data: JobSpec | Mapping[str, Any], idempotency_key: str | None = None) -> Job:
    """Book a job for `customer`: `data` is its JobSpec, or the flat payload JobSpec.from_payload parses.

    Holds price limit × GPUs × duration in escrow in the same transaction as the insert: a wallet that
    cannot cover it raises PaymentRequired (402, with the shortfall) and nothing is saved. Requirements no
    listed node can ever meet raise ImpossibleRequirement (400). With `idempotency_key`, a repeat returns
    the first job (and holds nothing again); the same key with a different payload raises Conflict (409).
    """
    job, _ = job_book_ex(customer=customer, data=data, idempotency_key=idempotency_key)
    return job


def _end_leases(*, job: Job, reason: str) -> list[Lease]:
    """End the job's live leases through the lease service; returns the leases that were live."""
    live = list(Lease.objects.filter(job=job, state__in=[LeaseState.RESERVED, LeaseState.ACTIVE]).order_by("pk"))
    for lease in live:
        lease_end(lease_id=lease.pk, reason=reason)
    return live


def _settle_through_billing(*, job: Job, ended: list[Lease]) -> bool:
    """When billing has an open account for a lease we just ended, let billing settle its remaining usage and
    return the job's unused hold (one release, under billing's key). Returns False when billing has none."""
    if not ended:
        return False
    accounts = {
        a.lease_ref: a for a in LeaseAccount.objects.filter(job_ref=job.pk, lease_ref__in=[lease.pk for lease in ended])
    }
    open_refs = [ref for ref, a in accounts.items() if a.status == LeaseAccountStatus.OPEN]
    if not open_refs:
        return False
    for ref in open_refs[:-1]:
        lease_settle_final(
            lease_ref=ref, job_ref=job.pk, customer_user=job.customer.user, release_unused_hold_micros=0, failed=False
        )
    lease_settle_final(
        lease_ref=open_refs[-1],
        job_ref=job.pk,
        customer_user=job.customer.user,
        # the job's whole hold: billing returns it minus every charge of the job's leases and earlier releases
        release_unused_hold_micros=job.held_micros,
        failed=False,
    )
    return True


def job_cancel(*, job: Job, customer: Customer) -> Job:
    """Cancel the customer's job and release the escrow it has not used.

    pending/preempted → cancelled, the whole hold released; matched/running → its lease ended first and the
    hold minus what was charged released. A job already completed, failed or cancelled raises Conflict (409),
    so a second cancel releases nothing.
    """
    if job.customer_id != customer.pk:
        raise NotFound("No such job.")
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.state in TERMINAL_JOB_STATES:
            raise Conflict(
                f"Job {locked.pk} is already {locked.state}; there is nothing to cancel.", code="job_terminal"
            )
        ended: list[Lease] = []
        if locked.state in (JobState.MATCHED, JobState.RUNNING):
            ended = _end_leases(job=locked, reason="cancelled by customer")
        charged = min(job_cost_so_far(job=locked), locked.held_micros)
        release = locked.held_micros - charged
        moved = job_transition(
            job_id=locked.pk,
            from_states=[
                JobState.PENDING,
                JobState.PREEMPTED,
                JobState.QUARANTINED,
                JobState.MATCHED,
                JobState.RUNNING,
            ],
            to_state=JobState.CANCELLED,
            note="cancelled by customer; unused escrow released",
            held_micros=0,
        )
        if not moved:  # pragma: no cover - the row lock above makes this unreachable
            raise Conflict(f"Job {locked.pk} changed state; try again.")
        if not _settle_through_billing(job=locked, ended=ended) and release > 0:
            escrow_release(
                user=customer.user,
                amount_micros=release,
                key=f"job:{locked.pk}:release",
                memo=f"Job {locked.pk} cancelled",
            )
    job.refresh_from_db()
    return job
