"""Reserved contracts: a customer commits to N GPUs for a term at a discount, paid monthly from its wallet.

The broker picks the node and reserves its capacity (broker/services/reserved.py) and then calls
`reserved_contract_open` here for the money. Terms:

  * monthly price = GPUs × list price per GPU-hour × 730 h × (1 − discount), floored to the micro-dollar;
  * discount by term: 1–2 months 5 %, 3–5 months 10 %, 6–11 months 15 %, 12 months or more 25 %;
  * month 1 is charged at booking (no money, no contract: InsufficientFunds → 402, nothing saved); month k is
    due at starts_at + 30 × (k − 1) days and charged by the daily `reserved_contracts_charge_due`;
  * each charge is one ledger transaction `reserved:<contract>:<month>`: customer wallet → platform fee +
    reserve + provider share, split like a usage settlement — so the provider share is subject to financing
    withholding like any other earnings;
  * a month the wallet cannot pay lapses the contract (its capacity is released); after the last month it is
    completed once its term has ended.

Such a contract is a receivable: unpaid months × monthly price back an advance in underwriting.
"""

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.errors import InsufficientFunds
from billing.models import Account, AccountKind
from billing.services.ledger import account_get, ledger_transfer
from billing.services.settlement import charge_split, provider_share_split
from common.errors import NotFound, ValidationFailed
from financing.models import ReservedContract, ReservedContractCharge, ReservedContractStatus
from marketplace.models import GPUModel, Node

HOURS_PER_MONTH = 730
DAYS_PER_MONTH = 30
MAX_TERM_MONTHS = 36


def reserved_discount_bps(*, term_months: int) -> int:
    if term_months >= 12:
        return 2500
    if term_months >= 6:
        return 1500
    if term_months >= 3:
        return 1000
    return 500


def reserved_monthly_micros(*, gpu_count: int, list_price_micros: int, discount_bps: int) -> int:
    return gpu_count * list_price_micros * HOURS_PER_MONTH * (10_000 - discount_bps) // 10_000


def _charge(contract: ReservedContract, month: int) -> ReservedContractCharge:
    key = f"reserved:{contract.pk}:{month}"
    amount = contract.monthly_micros
    fee, reserve, share = charge_split(amount_micros=amount)
    with transaction.atomic():  # a savepoint: withholding recorded for an unpaid month is undone with it
        legs: list[tuple[Account, int]] = [
            (account_get(kind=AccountKind.CUSTOMER_WALLET, user=contract.customer), -amount),
            (account_get(kind=AccountKind.PLATFORM_REVENUE), fee),
            (account_get(kind=AccountKind.RESERVE_FUND), reserve),
        ]
        legs += provider_share_split(provider_user=contract.provider, amount_micros=share, source_key=key)
        txn = ledger_transfer(
            key=key,
            kind="reserved_contract",
            legs=[(a, amt) for a, amt in legs if amt],
            memo=f"Reserved contract {contract.pk}, month {month} of {contract.term_months}",
            metadata={"reserved_contract_id": contract.pk, "month": month},
        )
    return ReservedContractCharge.objects.create(
        contract=contract, month_index=month, amount_micros=amount, ledger_transaction=txn
    )


def reserved_contract_open(
    *,
    customer_user: User,
    node: Node,
    gpu_model: GPUModel,
    gpu_count: int,
    term_months: int,
    list_price_micros: int,
    starts_at: datetime | None = None,
) -> ReservedContract:
    """Book the money side of a reservation and charge month 1 (402 and nothing saved if the wallet is short)."""
    if not hasattr(customer_user, "customer"):
        raise ValidationFailed("only customers book reserved contracts")
    if not 1 <= gpu_count <= node.gpu_count:
        raise ValidationFailed(f"gpu_count: between 1 and the node's {node.gpu_count} GPUs")
    if not 1 <= term_months <= MAX_TERM_MONTHS:
        raise ValidationFailed(f"term_months: between 1 and {MAX_TERM_MONTHS}")
    if list_price_micros <= 0:
        raise ValidationFailed("the node has no price")
    starts_at = starts_at or timezone.now()
    discount = reserved_discount_bps(term_months=term_months)
    with transaction.atomic():
        contract = ReservedContract.objects.create(
            customer=customer_user,
            provider=node.provider.user,
            node=node,
            gpu_model=gpu_model,
            gpu_count=gpu_count,
            term_months=term_months,
            list_price_micros=list_price_micros,
            discount_bps=discount,
            monthly_micros=reserved_monthly_micros(
                gpu_count=gpu_count, list_price_micros=list_price_micros, discount_bps=discount
            ),
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=DAYS_PER_MONTH * term_months),
        )
        _charge(contract, 1)
        contract.months_paid = 1
        contract.save(update_fields=["months_paid"])
        return contract


def reserved_contract_charge_due(*, contract_id: int, now: datetime | None = None) -> ReservedContract:
    """Charge every month that has come due; lapse the contract when the wallet cannot pay."""
    now = now or timezone.now()
    with transaction.atomic():
        contract = ReservedContract.objects.select_for_update(no_key=True).filter(pk=contract_id).first()
        if contract is None:
            raise NotFound(f"No reserved contract {contract_id}.")
        while contract.status == ReservedContractStatus.ACTIVE and contract.months_paid < contract.term_months:
            month = contract.months_paid + 1
            if now < contract.starts_at + timedelta(days=DAYS_PER_MONTH * (month - 1)):
                break
            try:
                _charge(contract, month)
            except InsufficientFunds:
                contract.status = ReservedContractStatus.LAPSED
                contract.ends_at = now
                contract.save(update_fields=["status", "ends_at"])
                return contract
            contract.months_paid = month
            contract.save(update_fields=["months_paid"])
        if (
            contract.status == ReservedContractStatus.ACTIVE
            and contract.months_paid >= contract.term_months
            and now >= contract.ends_at
        ):
            contract.status = ReservedContractStatus.COMPLETED
            contract.save(update_fields=["status"])
        return contract


def reserved_contracts_charge_due(*, now: datetime | None = None) -> int:
    ids = list(
        ReservedContract.objects.filter(status=ReservedContractStatus.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for pk in ids:
        reserved_contract_charge_due(contract_id=pk, now=now)
    return len(ids)
