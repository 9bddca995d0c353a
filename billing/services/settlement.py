"""Rating and settlement: metered usage becomes money moved from escrow to fee, reserve and provider.

Hooks the broker calls (plain values only; billing never imports broker):

* `lease_account_open(*, lease_ref, job_ref, customer_user, provider_user, node_id, price_micros, gpu_count,
  hold_micros, active_from, period_end, storage/egress prices and caps)` when it activates a lease. Idempotent on
  `lease_ref`. `services.metering.lease_clock_advance(node_id, seen_at)` on every heartbeat of the node.
* `lease_settle_final(*, lease_ref, job_ref, customer_user, release_unused_hold_micros, failed, ended_at)` when the
  lease ends or fails. Settles the remaining usage, closes the account, and returns the job's unused hold
  from escrow to the wallet: pass the JOB's escrow hold (Job.held_micros) when the job is over, 0 when it
  goes on (failover); billing releases `hold - everything the job's leases were charged - what it already
  released for the job` (never below 0, never more than the escrow holds). With `failed=True` (the node
  failed) the SLA credit policy of services.sla applies.

Rating follows THE RULE (services.metering): a lease's billed GPU-ms are min(what its accepted reports claim, what
the broker observed: GPUs × (seen_until − active_from)), cumulative; it is charged `prorate(price, billed GPU-ms)`
minus what it was already charged, so flooring never drifts. The job's escrow hold (`hold_micros`, carried by every
lease account of the job) caps what all the job's leases together are charged: the excess is not taken (it stays in
escrow, released with the hold) and is flagged as a `UsageAnomaly`; it never blocks other usage in the batch.
Storage (cumulative GB-ms × price per GB-month / 30 days) and egress (cumulative bytes × price per GB / 10^9), when
the lease's listing priced them, are bounded by the listing (disk, upload bandwidth) over the observed time and
rated the same way, tracked apart (charged_storage_micros, charged_egress_micros) and settled in the same
transaction and split; such a settlement's key also names the cumulative GB-ms and bytes. Each settlement is ONE ledger
transaction (escrow → platform fee → reserve → provider share, the provider share being the remainder
so the parts add up exactly) with the deterministic key `settle:<lease_ref>:<cumulative GPU-ms>`. The
lease account row is locked (SELECT ... FOR UPDATE) for the whole database transaction that writes the
ledger, the settlement and the usage statuses, so concurrent settlers neither lose nor duplicate, and a
settler killed midway leaves nothing behind (its transaction rolls back; the retry does it once).
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import BigIntegerField, Case, Exists, F, OuterRef, Sum, Value, When
from django.utils import timezone

from billing import dispatch
from billing.errors import InsufficientFunds
from billing.models import (
    Account,
    AccountKind,
    LeaseAccount,
    LeaseAccountStatus,
    Settlement,
    UsageAnomaly,
    UsageAnomalyKind,
    UsageRecord,
    UsageStatus,
)
from billing.services.ledger import Transfer, account_get, ledger_transfer, ledger_transfer_many
from billing.services.metering import observed_gpu_ms, observed_wall_ms, usage_anomaly_record
from billing.services.withholding import withholding_discard, withholding_lock, withholding_take
from common.errors import Conflict, NotFound, ValidationFailed
from common.money import format_usd, prorate

logger = logging.getLogger(__name__)

# Usage reported with one of these states covers an interval the node did not serve well: not charged.
FAILED_STATES = frozenset({"failed", "lost", "error"})


def _rate(name: str) -> Fraction:
    value = Fraction(str(getattr(settings, name)))
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1)")
    return value


def fee_rate() -> Fraction:
    return _rate("RIGSHIFT_PLATFORM_FEE_RATE")


def reserve_rate() -> Fraction:
    return _rate("RIGSHIFT_RESERVE_RATE")


def charge_split(*, amount_micros: int) -> tuple[int, int, int]:
    """(platform fee, reserve, provider share) of a charge: fee and reserve floored, provider the remainder."""
    fee_r, reserve_r = fee_rate(), reserve_rate()
    fee = amount_micros * fee_r.numerator // fee_r.denominator
    reserve = amount_micros * reserve_r.numerator // reserve_r.denominator
    return fee, reserve, amount_micros - fee - reserve


def rate_gpu_ms(*, price_micros: int, gpu_ms: int) -> int:
    """Cost of `gpu_ms` GPU-milliseconds at a per-GPU-hour price, floored to a micro-dollar."""
    # floor(floor(p*ms/3600)/1000) == floor(p*ms/3_600_000) for non-negative integers.
    return prorate(micros_per_hour=price_micros, seconds=gpu_ms) // 1000


STORAGE_MONTH_MS = 30 * 86_400 * 1000  # a billing "month" of storage: 30 days
BYTES_PER_GB = 10**9


def rate_storage_gb_ms(*, price_micros: int, gb_ms: int) -> int:
    """Cost of `gb_ms` GB-milliseconds of storage at a per-GB-month (30 days) price, floored to a micro-dollar."""
    return price_micros * gb_ms // STORAGE_MONTH_MS


def rate_egress_bytes(*, price_micros: int, egress_bytes: int) -> int:
    """Cost of `egress_bytes` bytes sent at a per-GB (10^9 bytes) price, floored to a micro-dollar."""
    return price_micros * egress_bytes // BYTES_PER_GB


def provider_share_split(
    *, provider_user: User, amount_micros: int, source_key: str = "", lease_ref: int | None = None
) -> list[tuple[Account, int]]:
    """Ledger legs crediting a provider's share of a charge: credits summing exactly to `amount_micros`.

    The registered withholding hooks (services.withholding; financing registers the repayment of advances) take
    their part first; the rest goes to the provider payable. `source_key` is the ledger key of the transaction the
    legs go into (it makes the withholding idempotent); without one everything goes to the provider payable.
    """
    payable = account_get(kind=AccountKind.PROVIDER_PAYABLE, user=provider_user)
    if amount_micros <= 0 or not source_key:
        return [(payable, amount_micros)]
    taken = withholding_take(
        provider_user=provider_user, amount_micros=amount_micros, source_key=source_key, lease_ref=lease_ref
    )
    return [(payable, amount_micros - sum(amount for _, amount in taken)), *taken]


def lease_account_open(
    *,
    lease_ref: int,
    job_ref: int,
    customer_user: User,
    provider_user: User,
    node_id: int,
    price_micros: int,
    gpu_count: int,
    hold_micros: int,
    active_from: datetime | None = None,
    period_end: datetime | None = None,
    storage_price_micros: int = 0,
    egress_price_micros: int = 0,
    storage_gb_cap: int | None = None,
    egress_bytes_per_s_cap: int | None = None,
) -> LeaseAccount:
    """Open billing's account of a lease (idempotent on `lease_ref`); usage already recorded for it gets rated.

    `hold_micros`: the JOB's escrow hold, never exceeded by the job's leases together. `active_from` (default now)
    starts the broker clock, `period_end` bounds it (services.metering). Storage (per GB-month) and egress (per GB)
    prices are the listing's (0: not charged); the caps are what the listing makes possible (None: no bound)."""
    if price_micros < 0 or gpu_count < 1 or hold_micros < 0 or storage_price_micros < 0 or egress_price_micros < 0:
        raise ValidationFailed("a lease has non-negative prices and hold and at least one GPU")
    active_from = active_from or timezone.now()
    from marketplace.models import Node

    model_name = Node.objects.filter(pk=node_id).values_list("gpu_model__name", flat=True).first() or ""
    account, created = LeaseAccount.objects.get_or_create(
        lease_ref=lease_ref,
        defaults={
            "job_ref": job_ref,
            "customer": customer_user,
            "provider": provider_user,
            "node_id": node_id,
            "gpu_model_name": model_name,
            "price_micros": price_micros,
            "gpu_count": gpu_count,
            "hold_micros": hold_micros,
            "storage_price_micros": storage_price_micros,
            "egress_price_micros": egress_price_micros,
            "active_from": active_from,
            "period_end": period_end,
            "seen_until": active_from,
            "storage_gb_cap": storage_gb_cap,
            "egress_bytes_per_s_cap": egress_bytes_per_s_cap,
        },
    )
    if not created and (
        account.job_ref != job_ref
        or account.customer_id != customer_user.pk
        or account.provider_id != provider_user.pk
        or account.price_micros != price_micros
        or account.storage_price_micros != storage_price_micros
        or account.egress_price_micros != egress_price_micros
    ):
        raise Conflict(f"lease {lease_ref} is already open with other terms")
    if created and UsageRecord.objects.filter(lease_ref=lease_ref, status=UsageStatus.PENDING).exists():
        dispatch.settle_lease(lease_ref)
    return account


@dataclass
class _PendingUsage:
    """The chargeable pending usage of a batch, per lease: record ids and summed GPU-ms, storage GB-ms, bytes."""

    pks: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    gpu_ms: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    gb_ms: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    egress_bytes: dict[int, int] = field(default_factory=lambda: defaultdict(int))


class _SystemAccounts:
    """Ledger accounts a batch's transfers move money between, each looked up once per batch."""

    def __init__(self) -> None:
        self._system: list[Account] = []
        self._escrows: dict[int, Account] = {}

    def system(self) -> tuple[Account, Account]:
        """(platform revenue, reserve fund)."""
        if not self._system:
            self._system += [account_get(kind=AccountKind.PLATFORM_REVENUE), account_get(kind=AccountKind.RESERVE_FUND)]
        return self._system[0], self._system[1]

    def escrow(self, account: LeaseAccount) -> Account:
        if account.customer_id not in self._escrows:
            self._escrows[account.customer_id] = account_get(kind=AccountKind.CUSTOMER_ESCROW, user=account.customer)
        return self._escrows[account.customer_id]


_Plan = tuple[LeaseAccount, Settlement, Transfer | None]


def _pending_usage_sort(by_ref: dict[int, LeaseAccount]) -> _PendingUsage:
    """Sum the chargeable pending usage of the leases; mark the rest (wrong node, failed interval) excluded."""
    rows = UsageRecord.objects.filter(lease_ref__in=list(by_ref), status=UsageStatus.PENDING).values_list(
        "pk", "lease_ref", "node_id", "gpu_ms", "storage_gb_ms", "egress_bytes", "state"
    )
    usage = _PendingUsage()
    excluded: dict[str, list[int]] = defaultdict(list)
    for pk, ref, node_id, gpu_ms, gb_ms, egress, state in rows:
        account = by_ref[ref]
        if node_id != account.node_id:
            excluded[f"reported by node {node_id}; the lease runs on node {account.node_id}"].append(pk)
        elif state in FAILED_STATES:
            excluded[f"interval reported as {state}: not charged"].append(pk)
        else:
            usage.pks[ref].append(pk)
            usage.gpu_ms[ref] += gpu_ms
            usage.gb_ms[ref] += gb_ms
            usage.egress_bytes[ref] += egress
    for reason, pks in excluded.items():
        UsageRecord.objects.filter(pk__in=pks).update(status=UsageStatus.EXCLUDED, exclusion_reason=reason)
    return usage


@dataclass
class _Batch:
    """What a settlement batch tracks across its leases: each job's escrow left, claims, anomalies to flag."""

    job_room: dict[int, int]
    claimed: dict[int, int] = field(default_factory=dict)
    anomalies: list[dict[str, Any]] = field(default_factory=list)


def _cap_at_job_hold(account: LeaseAccount, *, due: "_Due", batch: _Batch) -> tuple[int, int, int]:
    """Per-job escrow: the job's leases together never draw more than the job's own hold. The excess is capped (it
    stays in escrow and goes back with the hold) and flagged to staff; it never blocks other usage."""
    delta, storage_due, egress_due = due.gpu + due.storage + due.egress, due.storage, due.egress
    room = max(0, batch.job_room[account.job_ref])
    if delta > room:
        batch.anomalies.append(
            {
                "kind": UsageAnomalyKind.OVER_HOLD,
                "lease_ref": account.lease_ref,
                "job_ref": account.job_ref,
                "node_id": account.node_id,
                "provider_id": account.provider_id,
                "customer_id": account.customer_id,
                "claimed_micros": delta,
                "charged_micros": room,
                "detail": f"usage of lease {account.lease_ref} worth {format_usd(micros=delta)} exceeds the "
                f"{format_usd(micros=room)} left of job {account.job_ref}'s escrow hold; capped",
            }
        )
        delta = room
        storage_due = min(storage_due, delta)  # what the hold cannot cover is cut from GPU time, egress, storage
        egress_due = min(egress_due, delta - storage_due)
    batch.job_room[account.job_ref] -= delta
    return delta, storage_due, egress_due


def _settlement_plan(
    account: LeaseAccount, *, usage: _PendingUsage, ledger: _SystemAccounts, batch: _Batch
) -> _Plan | None:
    """The settlement of one lease up to what THE RULE lets it bill now and the ledger transfer that pays it (None
    when nothing is due); None when nothing new is billable (the claims are ahead of the broker clock)."""
    ref = account.lease_ref
    batch.claimed[ref] = account.claimed_gpu_ms + usage.gpu_ms[ref]
    due = _due(
        account=account, new_gb_ms=usage.gb_ms[ref], new_bytes=usage.egress_bytes[ref], claimed_ms=batch.claimed[ref]
    )
    upto, upto_gb_ms, upto_bytes = due.upto_gpu_ms, due.upto_gb_ms, due.upto_bytes
    if (upto, upto_gb_ms, upto_bytes) == (
        account.rated_gpu_ms,
        account.rated_storage_gb_ms,
        account.rated_egress_bytes,
    ):
        return None  # the usage is kept as evidence (rated, no settlement)
    delta, storage_due, egress_due = _cap_at_job_hold(account, due=due, batch=batch)
    fee, reserve, share = charge_split(amount_micros=delta)
    # The idempotency key names the cumulative usage; leases without storage/egress keep the GPU-only key.
    key = f"settle:{ref}:{upto}" if not (upto_gb_ms or upto_bytes) else f"settle:{ref}:{upto}:{upto_gb_ms}:{upto_bytes}"
    settlement = Settlement(
        lease_account=account,
        gpu_ms=upto - account.rated_gpu_ms,
        upto_gpu_ms=upto,
        upto_storage_gb_ms=upto_gb_ms,
        upto_egress_bytes=upto_bytes,
        storage_micros=storage_due,
        egress_micros=egress_due,
        charged_micros=delta,
        fee_micros=fee,
        reserve_micros=reserve,
        provider_micros=share,
    )
    if delta <= 0:
        return account, settlement, None
    revenue, reserve_fund = ledger.system()
    legs: list[tuple[Account, int]] = [(ledger.escrow(account), -delta), (revenue, fee), (reserve_fund, reserve)]
    legs += provider_share_split(provider_user=account.provider, amount_micros=share, source_key=key, lease_ref=ref)
    transfer = Transfer(
        key=key,
        kind="usage_settlement",
        legs=[(a, amt) for a, amt in legs if amt],
        memo=f"Usage of lease {ref}: {(upto - account.rated_gpu_ms) / 1000:.3f} GPU-s",
        metadata={
            "lease_ref": ref,
            "job_ref": account.job_ref,
            "upto_gpu_ms": upto,
            "upto_storage_gb_ms": upto_gb_ms,
            "upto_egress_bytes": upto_bytes,
            "storage_micros": storage_due,
            "egress_micros": egress_due,
        },
    )
    return account, settlement, transfer


_ACCOUNT_TOTALS = [
    "rated_gpu_ms",
    "claimed_gpu_ms",
    "rated_storage_gb_ms",
    "rated_egress_bytes",
    "charged_micros",
    "charged_storage_micros",
    "charged_egress_micros",
    "fee_micros",
    "reserve_micros",
    "provider_micros",
]


def _settlements_record(
    plans: list[_Plan], *, usage: _PendingUsage, by_ref: dict[int, LeaseAccount], batch: _Batch
) -> list[Settlement]:
    """Write the settled plans (ledger transactions already written): settlements, rated usage, account totals
    (claims of every lease of the batch), and the anomalies flagged (one per lease and kind)."""
    for anomaly in batch.anomalies:
        if not UsageAnomaly.objects.filter(kind=anomaly["kind"], lease_ref=anomaly["lease_ref"]).exists():
            usage_anomaly_record(**anomaly)
    settlements = Settlement.objects.bulk_create([s for _, s, _ in plans])
    all_good = [pk for ref in usage.pks for pk in usage.pks[ref]]
    if all_good:
        UsageRecord.objects.filter(pk__in=all_good).update(
            status=UsageStatus.RATED,
            settlement_id=Case(
                *[When(lease_ref=s.lease_account.lease_ref, then=Value(s.pk)) for s in settlements],
                default=None,
                output_field=BigIntegerField(),
            ),
        )
    for account, settlement, _ in plans:
        account.rated_gpu_ms = settlement.upto_gpu_ms
        account.rated_storage_gb_ms = settlement.upto_storage_gb_ms
        account.rated_egress_bytes = settlement.upto_egress_bytes
        account.charged_micros += settlement.charged_micros
        account.charged_storage_micros += settlement.storage_micros
        account.charged_egress_micros += settlement.egress_micros
        account.fee_micros += settlement.fee_micros
        account.reserve_micros += settlement.reserve_micros
        account.provider_micros += settlement.provider_micros
    for ref, account in by_ref.items():
        account.claimed_gpu_ms = batch.claimed[ref]
    LeaseAccount.objects.bulk_update(list(by_ref.values()), _ACCOUNT_TOTALS)
    return settlements


def _settle_locked(accounts: list[LeaseAccount]) -> list[Settlement]:
    """Rate and settle the pending usage of `accounts`, whose rows the caller holds locked (pk order)."""
    if not accounts:
        return []
    by_ref = {a.lease_ref: a for a in accounts}
    # Withholding hooks lock what they need for this batch's providers now, in one global order, so that withholding
    # (provider_share_split, lease by lease) never takes locks in an order another settler could reverse.
    withholding_lock(provider_ids={a.provider_id for a in accounts})
    usage = _pending_usage_sort(by_ref)
    ledger = _SystemAccounts()
    batch = _Batch(job_room=_job_room(accounts))
    planned = [_settlement_plan(by_ref[ref], usage=usage, ledger=ledger, batch=batch) for ref in sorted(by_ref)]
    plans = [plan for plan in planned if plan is not None]
    transfers = [t for _, _, t in plans if t is not None]
    try:
        with transaction.atomic():
            txns = iter(ledger_transfer_many(transfers=transfers))
    except InsufficientFunds:
        # A customer's escrow cannot cover its usage (its holds were released meanwhile): settle the others, leave
        # that lease pending. Withholding planned for the unwritten transactions is undone first.
        withholding_discard(source_keys=[t.key for t in transfers])
        if len(plans) == 1:
            logger.warning("escrow cannot cover usage of lease %s; left pending", plans[0][0].lease_ref)
            return []
        settled: list[Settlement] = []
        for account, _, _ in plans:
            settled += _settle_locked([account])
        return settled
    for _, settlement, transfer in plans:
        if transfer is not None:
            settlement.ledger_transaction = next(txns)
    return _settlements_record(plans, usage=usage, by_ref=by_ref, batch=batch)


@dataclass(frozen=True)
class _Due:
    upto_gpu_ms: int
    upto_gb_ms: int
    upto_bytes: int
    gpu: int
    storage: int
    egress: int


def _due(*, account: LeaseAccount, new_gb_ms: int, new_bytes: int, claimed_ms: int) -> _Due:
    """What the lease may be billed up to now under THE RULE (services.metering), and what that adds.

    GPU time: min(claimed GPU-ms, observed GPU-ms); storage and egress: the claims, bounded by what the listing makes
    possible over the observed wall time. Cumulative figures never go down; each part is rated cumulatively (floor
    of the cumulative cost minus what that part was already charged), so flooring never drifts.
    """
    wall_ms = observed_wall_ms(account=account)
    upto = max(account.rated_gpu_ms, min(claimed_ms, observed_gpu_ms(account=account)))
    upto_gb_ms = account.rated_storage_gb_ms + new_gb_ms
    if account.storage_gb_cap is not None:
        upto_gb_ms = max(account.rated_storage_gb_ms, min(upto_gb_ms, account.storage_gb_cap * wall_ms))
    upto_bytes = account.rated_egress_bytes + new_bytes
    if account.egress_bytes_per_s_cap is not None:
        upto_bytes = max(account.rated_egress_bytes, min(upto_bytes, account.egress_bytes_per_s_cap * wall_ms // 1000))
    storage_due = max(
        0,
        rate_storage_gb_ms(price_micros=account.storage_price_micros, gb_ms=upto_gb_ms)
        - account.charged_storage_micros,
    )
    egress_due = max(
        0,
        rate_egress_bytes(price_micros=account.egress_price_micros, egress_bytes=upto_bytes)
        - account.charged_egress_micros,
    )
    gpu_charged = account.charged_micros - account.charged_storage_micros - account.charged_egress_micros
    gpu_due = max(0, rate_gpu_ms(price_micros=account.price_micros, gpu_ms=upto) - gpu_charged)
    return _Due(upto, upto_gb_ms, upto_bytes, gpu_due, storage_due, egress_due)


def _job_room(accounts: list[LeaseAccount]) -> dict[int, int]:
    """{job_ref: what is left of the job's hold}: hold − everything the job's leases were charged or released."""
    holds: dict[int, int] = {}
    for account in accounts:
        holds[account.job_ref] = max(holds.get(account.job_ref, 0), account.hold_micros)
    totals = (
        LeaseAccount.objects.filter(job_ref__in=list(holds))
        .values("job_ref")
        .annotate(charged=Sum("charged_micros"), released=Sum("released_micros"))
    )
    spent = {row["job_ref"]: (row["charged"] or 0) + (row["released"] or 0) for row in totals}
    return {job: hold - spent.get(job, 0) for job, hold in holds.items()}


def lease_settle(*, lease_ref: int) -> list[Settlement]:
    """Settle one lease's pending usage now (waits for a concurrent settler of the same lease)."""
    with transaction.atomic():
        account = (
            LeaseAccount.objects.select_for_update(of=("self",))
            .select_related("customer", "provider")
            .filter(lease_ref=lease_ref, status=LeaseAccountStatus.OPEN)
            .first()
        )
        if account is None:
            return []
        return _settle_locked([account])


def usage_settle_pending(*, batch_size: int = 200, max_batches: int = 50) -> int:
    """Settle every open lease with pending usage, `batch_size` leases per database transaction.

    Leases another settler holds are skipped (SKIP LOCKED) — that settler is on them. Pending usage of
    closed leases is marked excluded ("arrived after the lease closed"). Returns settlements written.
    """
    UsageRecord.objects.filter(
        status=UsageStatus.PENDING,
    ).filter(
        Exists(LeaseAccount.objects.filter(lease_ref=OuterRef("lease_ref"), status=LeaseAccountStatus.CLOSED))
    ).update(status=UsageStatus.EXCLUDED, exclusion_reason="arrived after the lease closed: not charged")
    written = 0
    last_ref = -1
    for _ in range(max_batches):
        pending = (
            UsageRecord.objects.filter(status=UsageStatus.PENDING, lease_ref__gt=last_ref)
            .filter(
                Exists(LeaseAccount.objects.filter(lease_ref=OuterRef("lease_ref"), status=LeaseAccountStatus.OPEN))
            )
            .order_by("lease_ref")
            .values_list("lease_ref", flat=True)
            .distinct()[:batch_size]
        )
        # ... and leases whose claims ran ahead of the broker clock: the clock may have caught up since
        behind = (
            LeaseAccount.objects.filter(
                status=LeaseAccountStatus.OPEN, lease_ref__gt=last_ref, claimed_gpu_ms__gt=F("rated_gpu_ms")
            )
            .order_by("lease_ref")
            .values_list("lease_ref", flat=True)[:batch_size]
        )
        refs = sorted(set(pending) | set(behind))[:batch_size]
        if not refs:
            break
        last_ref = refs[-1]
        with transaction.atomic():
            accounts = list(
                LeaseAccount.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("customer", "provider")
                .filter(lease_ref__in=refs, status=LeaseAccountStatus.OPEN)
                .order_by("pk")
            )
            written += len(_settle_locked(accounts))
    return written


def lease_settle_final(
    *,
    lease_ref: int,
    job_ref: int,
    customer_user: User,
    release_unused_hold_micros: int,
    failed: bool,
    ended_at: datetime | None = None,
) -> LeaseAccount:
    """Close a lease's account: settle its remaining usage, return the unused hold, apply the SLA policy.

    `release_unused_hold_micros` is the job's escrow hold (0 while the job goes on); `hold - the job's charges
    - what was already released for the job` goes back to the wallet. `failed=True` means the lease failed
    because its node failed: usage reported after this call is not charged, and services.sla credits the
    customer. `ended_at` (default now) is when the broker closed the lease (exit report, end of period,
    cancellation, preemption, failure): the broker clock stops at the earlier of it and the node's last heartbeat.
    Idempotent: a repeated call returns the closed account unchanged.
    """
    if release_unused_hold_micros < 0:
        raise ValidationFailed("release_unused_hold_micros must not be negative")
    with transaction.atomic():
        account = (
            LeaseAccount.objects.select_for_update(of=("self",))
            .select_related("customer", "provider")
            .filter(lease_ref=lease_ref)
            .first()
        )
        if account is None:
            raise NotFound(f"lease {lease_ref} has no billing account (lease_account_open was not called)")
        if account.job_ref != job_ref or account.customer_id != customer_user.pk:
            raise ValidationFailed(f"lease {lease_ref} belongs to another job or customer")
        if account.status == LeaseAccountStatus.CLOSED:
            return account
        ended_at = ended_at or timezone.now()
        if account.seen_until is not None and account.seen_until > ended_at:
            account.seen_until = ended_at
            account.save(update_fields=["seen_until"])
        _settle_locked([account])
        _flag_claims_beyond_clock(account=account)
        UsageRecord.objects.filter(lease_ref=lease_ref, status=UsageStatus.PENDING).update(
            status=UsageStatus.EXCLUDED, exclusion_reason="escrow could not cover it at close: not charged"
        )
        account.released_micros = _release_unused_hold(account=account, hold=release_unused_hold_micros)
        account.status = LeaseAccountStatus.CLOSED
        account.failed = failed
        account.closed_at = timezone.now()
        account.save(update_fields=["released_micros", "status", "failed", "closed_at"])
        if failed:
            from billing.services.sla import sla_credit_for_failed_lease

            sla_credit_for_failed_lease(lease_ref=lease_ref)
        return account


def _release_unused_hold(*, account: LeaseAccount, hold: int) -> int:
    """Return the job's unused hold to the wallet; `hold` is 0 while the job goes on (failover): nothing yet.

    Job-level: what the job's leases were charged and what billing already returned for the job come out of the
    hold first, so a failed-over job's earlier leases are not released twice. Returns what was released."""
    job_totals = LeaseAccount.objects.filter(job_ref=account.job_ref).aggregate(
        charged=Sum("charged_micros"), released=Sum("released_micros")
    )
    release = max(0, hold - (job_totals["charged"] or 0) - (job_totals["released"] or 0))
    if not release:
        return 0
    escrow = account_get(kind=AccountKind.CUSTOMER_ESCROW, user=account.customer)
    escrow.refresh_from_db(fields=["balance"])
    release = min(release, escrow.balance)
    if release:
        wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=account.customer)
        ledger_transfer(
            key=f"release:{account.lease_ref}",
            kind="escrow_release",
            legs=[(escrow, -release), (wallet, release)],
            memo=f"Unused hold of lease {account.lease_ref}",
            metadata={"lease_ref": account.lease_ref, "job_ref": account.job_ref},
        )
    return release


def _flag_claims_beyond_clock(*, account: LeaseAccount) -> None:
    """At close: reports that claimed clearly more than the broker observed (beyond the first report's interval
    before activation and a heartbeat of lag) are flagged once. They were never charged (THE RULE)."""
    interval_ms = int(getattr(settings, "RIGSHIFT_HEARTBEAT_INTERVAL_S", 15)) * 1000
    tolerance = account.gpu_count * (2 * interval_ms + 60_000)
    observed = observed_gpu_ms(account=account)
    if account.claimed_gpu_ms <= observed + tolerance:
        return
    if UsageAnomaly.objects.filter(kind=UsageAnomalyKind.OVER_CLOCK, lease_ref=account.lease_ref).exists():
        return
    claimed = rate_gpu_ms(price_micros=account.price_micros, gpu_ms=account.claimed_gpu_ms)
    usage_anomaly_record(
        kind=UsageAnomalyKind.OVER_CLOCK,
        lease_ref=account.lease_ref,
        job_ref=account.job_ref,
        node_id=account.node_id,
        provider_id=account.provider_id,
        customer_id=account.customer_id,
        claimed_micros=claimed,
        charged_micros=account.charged_micros,
        detail=f"the agent claimed {account.claimed_gpu_ms / 1000:.0f} GPU-s; the broker observed "
        f"{observed / 1000:.0f} GPU-s; billed the observed time",
    )
