"""Price consent (issue 12 point 5): no lease below the provider's ask (or an interruptible job's min bid) unless
the provider accepted it.

Automatic rounds price at the ask (or the bid, never below the min bid) and `leases_create_bulk` refuses anything
else. A staff assignment whose price would fall below the floor (an override of the job's price limit) does not
lease: `price_offer_create` records a PriceOffer the provider sees at /provider/offers/ (page and API). Accepting it
leases the job at the offered price, if the job is still pending and the node still has the GPUs; declining refuses
it. Both are audit-logged; only the node's own provider can decide.
"""

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from broker.models import Job, JobState, Lease, PriceOffer, PriceOfferState
from broker.services.leases import lease_create
from common.errors import Conflict, NotFound
from common.services import audit_log
from marketplace.models import Node, Provider


def price_offer_create(
    *, job: Job, node: Node, price_micros: int, floor_micros: int, by: Any, reason: str
) -> PriceOffer:
    """Staff: ask the node's provider to accept `job` at `price_micros` (below its floor). One pending offer per
    job and node: asking again returns the pending one."""
    with transaction.atomic():
        existing = PriceOffer.objects.filter(job=job, node=node, state=PriceOfferState.PENDING).first()
        if existing is not None:
            return existing
        offer = PriceOffer.objects.create(
            job=job, node=node, price_micros=price_micros, floor_micros=floor_micros, reason=reason, created_by=by
        )
        audit_log(
            actor=by,
            action="price_offer.create",
            target=f"job:{job.pk}",
            details={"offer": offer.pk, "node_id": node.pk, "price_micros": price_micros, "floor_micros": floor_micros},
        )
    return offer


def _own_pending(*, offer_id: int, provider: Provider) -> PriceOffer:
    offer = (
        PriceOffer.objects.select_for_update()
        .select_related("node", "job")
        .filter(pk=offer_id, node__provider=provider)
        .first()
    )
    if offer is None:
        raise NotFound("No such price offer.")
    if offer.state != PriceOfferState.PENDING:
        raise Conflict(f"This offer is already {offer.get_state_display().lower()}.", code="offer_decided")
    return offer


def price_offer_decline(*, offer_id: int, provider: Provider) -> PriceOffer:
    """The provider refuses the price: nothing is leased; the job stays pending for the market."""
    with transaction.atomic():
        offer = _own_pending(offer_id=offer_id, provider=provider)
        offer.state, offer.decided_at, offer.outcome = PriceOfferState.DECLINED, timezone.now(), "declined"
        offer.save(update_fields=["state", "decided_at", "outcome"])
        audit_log(actor=provider.user, action="price_offer.decline", target=f"job:{offer.job_id}", details={})
    return offer


def price_offer_accept(*, offer_id: int, provider: Provider) -> Lease:
    """The provider accepts: the job is leased on the node at the offered price, now. When the job is no longer
    pending or the node lacks the GPUs, the offer lapses (409) and nothing is leased."""
    from broker.selectors.console import job_assignment_check

    with transaction.atomic():
        offer = _own_pending(offer_id=offer_id, provider=provider)
        job, node = offer.job, offer.node
        check = job_assignment_check(job=job, node=node) if job.state == JobState.PENDING else None
        problem = f"job {job.pk} is {job.get_state_display().lower()}" if check is None else check.blocker or ""
        if problem:
            _lapse(offer=offer, why=problem)
            raise Conflict(f"The offer lapsed: {problem}.", code="offer_lapsed")
        assert check is not None and check.starts_at is not None and check.ends_at is not None
        try:
            with transaction.atomic():
                lease = lease_create(
                    job_id=job.pk,
                    node_id=node.pk,
                    gpu_slots=check.slots,
                    price_micros=offer.price_micros,
                    starts_at=check.starts_at,
                    ends_at=check.ends_at,
                    consented_offer_id=offer.pk,
                )
        except (Conflict, IntegrityError) as exc:
            _lapse(offer=offer, why=str(exc))
            raise Conflict(f"The offer lapsed: {exc}", code="offer_lapsed") from None
        offer.state, offer.decided_at, offer.lease = PriceOfferState.ACCEPTED, timezone.now(), lease
        offer.outcome = f"leased as lease {lease.pk}"
        offer.save(update_fields=["state", "decided_at", "lease", "outcome"])
        audit_log(
            actor=provider.user,
            action="price_offer.accept",
            target=f"job:{job.pk}",
            details={"offer": offer.pk, "lease": lease.pk, "price_micros": offer.price_micros},
        )
    return lease


def _lapse(*, offer: PriceOffer, why: str) -> None:
    PriceOffer.objects.filter(pk=offer.pk).update(
        state=PriceOfferState.LAPSED, decided_at=timezone.now(), outcome=why[:300]
    )
