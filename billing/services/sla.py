"""SLA credits for leases that failed because their node failed.

Policy (documented for customers and providers):

1. The failed interval is not charged. Usage reported after the lease was closed as failed, or
   reported with a failed state ("failed", "lost", "error"), is recorded but never rated
   (services.settlement); only intervals up to the last good heartbeat are billed.
2. The customer receives a credit of 10% of what the lease was charged, at least $0.01
   (SLA_CREDIT_MIN_MICROS), paid from the platform reserve fund into the customer's wallet and capped
   by the reserve fund's balance including the penalty paid into it in the same transaction (the
   reserve never goes negative; an empty reserve with no penalty collected pays nothing).
3. The provider bears a penalty computed by the same rule (10% of the lease's charges, at least
   $0.01), moved from its payable into the reserve fund — which replenishes the reserve — capped by
   the payable's balance (a payable never goes negative).
4. Both movements are ONE ledger transaction with the key `sla:<lease_ref>`; a repeated call
   returns the first result (or None when the policy gave nothing).
"""

from django.db import transaction

from billing.models import AccountKind, LeaseAccount, LedgerTransaction, SlaCredit
from billing.services.ledger import account_get, ledger_transfer
from common.errors import NotFound

SLA_CREDIT_RATE_PERCENT = 10
SLA_CREDIT_MIN_MICROS = 10_000  # $0.01
POLICY = "10% of the lease's charges, min $0.01, from the reserve fund; same penalty on the provider payable"


def sla_amount(*, charged_micros: int) -> int:
    """The policy's credit (and penalty) for a lease charged `charged_micros`, before the balance caps."""
    return max(charged_micros * SLA_CREDIT_RATE_PERCENT // 100, SLA_CREDIT_MIN_MICROS)


def sla_credit_for_failed_lease(*, lease_ref: int) -> LedgerTransaction | None:
    """Credit the customer and penalise the provider of a failed lease, once. None when nothing is due."""
    with transaction.atomic():
        account = LeaseAccount.objects.select_for_update().filter(lease_ref=lease_ref).first()
        if account is None:
            raise NotFound(f"lease {lease_ref} has no billing account")
        existing = SlaCredit.objects.filter(lease_account=account).select_related("ledger_transaction").first()
        if existing is not None:
            return existing.ledger_transaction
        if not account.failed:
            return None
        amount = sla_amount(charged_micros=account.charged_micros)
        reserve = account_get(kind=AccountKind.RESERVE_FUND)
        payable = account_get(kind=AccountKind.PROVIDER_PAYABLE, user=account.provider)
        wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=account.customer)
        reserve.refresh_from_db(fields=["balance"])
        payable.refresh_from_db(fields=["balance"])
        penalty = min(amount, max(payable.balance, 0))
        credit = min(amount, max(reserve.balance, 0) + penalty)
        if credit == 0 and penalty == 0:
            return None
        legs = [(reserve, penalty - credit), (wallet, credit), (payable, -penalty)]
        txn = ledger_transfer(
            key=f"sla:{lease_ref}",
            kind="sla_credit",
            legs=[(a, amt) for a, amt in legs if amt],
            memo=f"SLA credit for failed lease {lease_ref}",
            metadata={"lease_ref": lease_ref, "job_ref": account.job_ref, "credit": credit, "penalty": penalty},
        )
        SlaCredit.objects.create(
            lease_account=account, ledger_transaction=txn, credit_micros=credit, penalty_micros=penalty, policy=POLICY
        )
        return txn
