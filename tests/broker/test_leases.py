# mypy: disable-error-code="misc"
"""Lease services: conditional transitions (repeats are no-ops), slot truncation, job moves, money,
and the database-level no-double-booking rule (PostgreSQL exclusion constraint; SQLite re-check)."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing.selectors.wallet import wallet_balance
from billing.services.wallet import escrow_hold
from broker.models import Job, JobEvent, JobState, Lease, LeaseSlot, LeaseState
from broker.services.leases import (
    LeasePlan,
    lease_activate,
    lease_create,
    lease_end,
    lease_fail,
    lease_preempt,
    leases_create_bulk,
    leases_expire,
)
from common.errors import Conflict
from tests.broker.booking_helpers import fund
from tests.factories import CustomerFactory, JobFactory, NodeFactory

pytestmark = pytest.mark.django_db


def pending_job(customer=None, **kw):
    return JobFactory(customer=customer or CustomerFactory(), **{"name": "j", "max_price_micros": 2_000_000, **kw})


def leased(node=None, job=None, slots=(0,), hours=1.0):
    node = node or NodeFactory()
    job = job or pending_job()
    now = timezone.now()
    return lease_create(
        job_id=job.pk,
        node_id=node.pk,
        gpu_slots=list(slots),
        price_micros=node.price_micros,
        starts_at=now,
        ends_at=now + timedelta(hours=hours),
    )


def test_create_moves_job_and_holds_slots():
    lease = leased(slots=(0, 1))
    assert lease.state == LeaseState.RESERVED and lease.gpu_count == 2
    assert Job.objects.get(pk=lease.job_id).state == JobState.MATCHED
    assert sorted(LeaseSlot.objects.filter(lease=lease).values_list("slot", flat=True)) == [0, 1]


def test_create_refuses_overlap_and_non_pending_job():
    lease = leased()
    with pytest.raises(Conflict):
        leased(node=lease.node, slots=(0,))
    with pytest.raises(Conflict):
        leased(job=lease.job, slots=(1,), node=NodeFactory())


def test_activate_is_conditional():
    lease = leased()
    assert lease_activate(lease_id=lease.pk) is True
    assert lease_activate(lease_id=lease.pk) is False
    lease.refresh_from_db()
    assert lease.state == LeaseState.ACTIVE and lease.activated_at is not None
    assert Job.objects.get(pk=lease.job_id).state == JobState.RUNNING


def test_end_truncates_slots_so_gpus_free_up_and_repeat_is_noop():
    lease = leased()
    assert lease_end(lease_id=lease.pk, reason="done", complete_job=True) is True
    assert lease_end(lease_id=lease.pk, reason="again", complete_job=True) is False
    lease.refresh_from_db()
    assert lease.state == LeaseState.ENDED and lease.end_reason == "done"
    slot = LeaseSlot.objects.get(lease=lease)
    assert slot.ends_at <= timezone.now()
    assert Job.objects.get(pk=lease.job_id).state == JobState.COMPLETED
    # The GPU can be leased again right away.
    leased(node=lease.node, slots=(0,))


def test_end_without_complete_leaves_job_to_caller():
    lease = leased()
    lease_end(lease_id=lease.pk, reason="cancelled by customer")
    assert Job.objects.get(pk=lease.job_id).state == JobState.MATCHED


def test_fail_requeues_with_retry_then_fails_when_budget_spent():
    customer = CustomerFactory()
    fund(customer, 50)
    job = pending_job(customer, max_retries=1, held_micros=2_000_000)
    escrow_hold(user=customer.user, amount_micros=2_000_000, key=f"hold:{job.pk}")
    first = leased(job=job)
    assert lease_fail(lease_id=first.pk, reason="node offline") is True
    assert lease_fail(lease_id=first.pk, reason="node offline") is False
    job.refresh_from_db()
    assert job.state == JobState.PENDING and job.retries == 1
    assert JobEvent.objects.filter(job=job, to_state=JobState.PENDING, from_state=JobState.MATCHED).exists()
    second = leased(job=job, node=first.node, slots=(1,))
    before = wallet_balance(user=customer.user)
    lease_fail(lease_id=second.pk, reason="node offline")
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.held_micros == 0
    after = wallet_balance(user=customer.user)
    assert after.available_micros - before.available_micros == 2_000_000  # nothing ran: all comes back
    assert after.held_micros == 0


def test_preempt_requeues_with_history_and_keeps_retries():
    job = pending_job(mode="interruptible", bid_micros=300_000, max_price_micros=None)
    lease = leased(job=job)
    lease_activate(lease_id=lease.pk)
    assert lease_preempt(lease_id=lease.pk) is True
    assert lease_preempt(lease_id=lease.pk) is False
    job.refresh_from_db()
    assert job.state == JobState.PENDING and job.retries == 0
    steps = list(JobEvent.objects.filter(job=job).values_list("to_state", flat=True))
    assert steps[-2:] == [JobState.PREEMPTED, JobState.PENDING]
    assert Lease.objects.get(pk=lease.pk).state == LeaseState.PREEMPTED


def test_expiry_ends_leases_past_their_end():
    lease = leased(hours=1)
    assert leases_expire(now=timezone.now() + timedelta(hours=2)) == 1
    assert Lease.objects.get(pk=lease.pk).state == LeaseState.ENDED
    assert leases_expire(now=timezone.now() + timedelta(hours=2)) == 0


def test_bulk_insert_writes_every_column_its_model_defaults():
    """The PostgreSQL path is a COPY naming its columns: a NOT NULL column it forgot (port_map, once) fails every
    round there. Both paths give the model's defaults."""
    node = NodeFactory()
    jobs = [pending_job(), pending_job()]
    now = timezone.now()
    end = now + timedelta(hours=1)
    plans = [LeasePlan(j.pk, node.pk, [i], node.price_micros, now, end) for i, j in enumerate(jobs)]
    with transaction.atomic():
        ids = leases_create_bulk(plans=plans)
    leases = list(Lease.objects.filter(pk__in=ids).order_by("pk"))
    assert [lease.job_id for lease in leases] == [j.pk for j in jobs]
    assert all(lease.port_map == [] and lease.state == LeaseState.RESERVED for lease in leases)


def test_bulk_insert_rechecks_overlap_within_batch_on_sqlite():
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL relies on the exclusion constraint (tested below)")
    node = NodeFactory()
    a, b = pending_job(), pending_job()
    now = timezone.now()
    plans = [LeasePlan(j.pk, node.pk, [0], node.price_micros, now, now + timedelta(hours=1)) for j in (a, b)]
    with pytest.raises(Conflict, match="already leased"), transaction.atomic():
        leases_create_bulk(plans=plans)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="exclusion constraint is PostgreSQL-only")
def test_postgres_exclusion_constraint_refuses_overlapping_slots():
    node = NodeFactory()
    lease = leased(node=node, hours=2)
    other = leased(node=NodeFactory())
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        LeaseSlot.objects.create(
            lease=other, node=node, slot=0, starts_at=now + timedelta(minutes=30), ends_at=now + timedelta(hours=3)
        )
    # Adjacent periods and other slots are fine.
    LeaseSlot.objects.create(lease=other, node=node, slot=1, starts_at=now, ends_at=now + timedelta(hours=1))
    end = LeaseSlot.objects.get(lease=lease).ends_at
    LeaseSlot.objects.create(lease=other, node=node, slot=0, starts_at=end, ends_at=end + timedelta(hours=1))
    # The bulk path (COPY) is guarded the same way.
    job = pending_job()
    with pytest.raises(IntegrityError), transaction.atomic():
        leases_create_bulk(plans=[LeasePlan(job.pk, node.pk, [0], node.price_micros, now, now + timedelta(hours=1))])


def test_activated_lease_end_closes_billing_account_and_returns_unused_hold():
    from billing.models import LeaseAccount

    customer = CustomerFactory()
    fund(customer, 50)
    job = pending_job(customer, held_micros=3_000_000)
    escrow_hold(user=customer.user, amount_micros=3_000_000, key=f"hold:{job.pk}")
    lease = leased(job=job)
    lease_activate(lease_id=lease.pk)
    assert LeaseAccount.objects.filter(lease_ref=lease.pk).exists()
    lease_end(lease_id=lease.pk, reason="done", complete_job=True)
    account = LeaseAccount.objects.get(lease_ref=lease.pk)
    assert account.status == "closed"
    job.refresh_from_db()
    assert job.state == JobState.COMPLETED and job.held_micros == 0
    balance = wallet_balance(user=customer.user)
    assert balance.held_micros == 0 and balance.available_micros == 50_000_000  # no usage reported: all back
