"""Rating and settlement: metered usage becomes money moved from escrow to fee, reserve and provider.

Hooks the broker calls (plain values only; billing never imports broker):

* `lease_account_open(*, lease_ref, job_ref, customer_user, provider_user, node_id, price_micros, gpu_count,
  hold_micros=0, storage_price_micros=0, egress_price_micros=0)` when it creates a lease. Idempotent on
  `lease_ref`.
* `lease_settle_final(*, lease_ref, job_ref, customer_user, release_unused_hold_micros, failed)` when the
  lease ends or fails. Settles the remaining usage, closes the account, and returns the job's unused hold
  from escrow to the wallet: pass the JOB's escrow hold (Job.held_micros) when the job is over, 0 when it
  goes on (failover); billing releases `hold - everything the job's leases were charged - what it already
  released for the job` (never below 0, never more than the escrow holds). With `failed=True` (the node
  failed) the SLA credit policy of services.sla applies.

Rating: a lease is charged `prorate(price, cumulative GPU-seconds)` minus what it was already charged,
so flooring never drifts, capped at `hold_micros` when one was given. Storage (cumulative GB-ms × price per
GB-month / 30 days) and egress (cumulative bytes × price per GB / 10^9), when the lease's listing priced them,
are rated the same way, tracked apart (charged_storage_micros, charged_egress_micros) and settled in the same
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
from fractions import Fraction

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import BigIntegerField, Case, Exists, OuterRef, Sum, Value, When
from django.utils import timezone

from billing import dispatch
from billing.errors import InsufficientFunds
from billing.models import (
    Account,
    AccountKind,
    LeaseAccount,
    LeaseAccountStatus,
    Settlement,
    UsageRecord,
    UsageStatus,
)
from billing.services.ledger import Transfer, account_get, ledger_transfer, ledger_transfer_many
from billing.services.withholding import withholding_discard, withholding_lock, withholding_take
from common.errors import Conflict, NotFound, ValidationFailed
from common.money import prorate

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
    hold_micros: int = 0,
    storage_price_micros: int = 0,
    egress_price_micros: int = 0,
) -> LeaseAccount:
    """Open billing's account of a lease (idempotent on `lease_ref`); usage already recorded for it gets rated.

    `storage_price_micros` (per GB-month) and `egress_price_micros` (per GB) are the listing's storage and
    egress prices at lease time; 0 means storage/egress reported for the lease is not charged.
    """
    if price_micros < 0 or gpu_count < 1 or hold_micros < 0 or storage_price_micros < 0 or egress_price_micros < 0:
        raise ValidationFailed("a lease has non-negative prices and hold and at least one GPU")
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


def _settlement_rate(account: LeaseAccount, *, upto: int, upto_gb_ms: int, upto_bytes: int) -> tuple[int, int, int]:
    """(charge, of which storage, of which egress) of a lease's usage up to the given cumulative totals.

    Each part is rated cumulatively (floor of the cumulative cost minus what that part was charged). The hold caps
    the lease's total; what it cannot cover is cut from GPU time, then egress, then storage."""
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
    delta = gpu_due + storage_due + egress_due
    if account.hold_micros:
        delta = min(delta, max(0, account.hold_micros - account.charged_micros))
        storage_due = min(storage_due, delta)
        egress_due = min(egress_due, delta - storage_due)
    return delta, storage_due, egress_due


def _settlement_plan(account: LeaseAccount, *, usage: _PendingUsage, ledger: _SystemAccounts) -> _Plan:
    """The settlement of one lease's pending usage and the ledger transfer that pays it (None when nothing is due)."""
    ref = account.lease_ref
    upto = account.rated_gpu_ms + usage.gpu_ms[ref]
    upto_gb_ms = account.rated_storage_gb_ms + usage.gb_ms[ref]
    upto_bytes = account.rated_egress_bytes + usage.egress_bytes[ref]
    delta, storage_due, egress_due = _settlement_rate(account, upto=upto, upto_gb_ms=upto_gb_ms, upto_bytes=upto_bytes)
    fee, reserve, share = charge_split(amount_micros=delta)
    # The idempotency key names the cumulative usage; leases without storage/egress keep the GPU-only key.
    key = f"settle:{ref}:{upto}" if not (upto_gb_ms or upto_bytes) else f"settle:{ref}:{upto}:{upto_gb_ms}:{upto_bytes}"
    settlement = Settlement(
        lease_account=account,
        gpu_ms=usage.gpu_ms[ref],
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
        memo=f"Usage of lease {ref}: {usage.gpu_ms[ref] / 1000:.3f} GPU-s",
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
    "rated_storage_gb_ms",
    "rated_egress_bytes",
    "charged_micros",
    "charged_storage_micros",
    "charged_egress_micros",
    "fee_micros",
    "reserve_micros",
    "provider_micros",
]


def _settlements_record(plans: list[_Plan], *, usage: _PendingUsage) -> list[Settlement]:
    """Write the settled plans (ledger transactions already written): settlements, rated usage, account totals."""
    settlements = Settlement.objects.bulk_create([s for _, s, _ in plans])
    all_good = [pk for ref in usage.pks for pk in usage.pks[ref]]
    UsageRecord.objects.filter(pk__in=all_good).update(
        status=UsageStatus.RATED,
        settlement_id=Case(
            *[When(lease_ref=s.lease_account.lease_ref, then=Value(s.pk)) for s in settlements],
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
    LeaseAccount.objects.bulk_update([a for a, _, _ in plans], _ACCOUNT_TOTALS)
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
    plans = [_settlement_plan(by_ref[ref], usage=usage, ledger=ledger) for ref in sorted(usage.pks)]
    if not plans:
        return []
    transfers = [t for _, _, t in plans if t is not None]
    try:
        with transaction.atomic():
            txns = iter(ledger_transfer_many(transfers=transfers))
    except InsufficientFunds:
        # One customer's escrow cannot cover its usage: settle the others, leave that lease pending.
        # Withholding planned for the unwritten transactions is undone first.
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
    return _settlements_record(plans, usage=usage)


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
        refs = list(
            UsageRecord.objects.filter(status=UsageStatus.PENDING, lease_ref__gt=last_ref)
            .filter(
                Exists(LeaseAccount.objects.filter(lease_ref=OuterRef("lease_ref"), status=LeaseAccountStatus.OPEN))
            )
            .order_by("lease_ref")
            .values_list("lease_ref", flat=True)
            .distinct()[:batch_size]
        )
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
) -> LeaseAccount:
    """Close a lease's account: settle its remaining usage, return the unused hold, apply the SLA policy.

    `release_unused_hold_micros` is the job's escrow hold (0 while the job goes on); `hold - the job's charges
    - what was already released for the job` goes back to the wallet. `failed=True` means the lease failed
    because its node failed: usage reported after this call is not charged, and services.sla credits the
    customer. Idempotent: a repeated call returns the closed account unchanged.
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
        _settle_locked([account])
        UsageRecord.objects.filter(lease_ref=lease_ref, status=UsageStatus.PENDING).update(
            status=UsageStatus.EXCLUDED, exclusion_reason="escrow could not cover it at close: not charged"
        )
        # Job-level: what the job's leases were charged and what billing already returned for the job
        # come out of the hold first, so a failed-over job's earlier leases are not released twice.
        hold = release_unused_hold_micros or account.hold_micros
        job_totals = LeaseAccount.objects.filter(job_ref=account.job_ref).aggregate(
            charged=Sum("charged_micros"), released=Sum("released_micros")
        )
        release = max(0, hold - (job_totals["charged"] or 0) - (job_totals["released"] or 0))
        if release:
            escrow = account_get(kind=AccountKind.CUSTOMER_ESCROW, user=account.customer)
            escrow.refresh_from_db(fields=["balance"])
            release = min(release, escrow.balance)
        if release:
            wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=account.customer)
            ledger_transfer(
                key=f"release:{lease_ref}",
                kind="escrow_release",
                legs=[(escrow, -release), (wallet, release)],
                memo=f"Unused hold of lease {lease_ref}",
                metadata={"lease_ref": lease_ref, "job_ref": job_ref},
            )
        account.released_micros = release
        account.status = LeaseAccountStatus.CLOSED
        account.failed = failed
        account.closed_at = timezone.now()
        account.save(update_fields=["released_micros", "status", "failed", "closed_at"])
        if failed:
            from billing.services.sla import sla_credit_for_failed_lease

            sla_credit_for_failed_lease(lease_ref=lease_ref)
        return account
