"""Money: a double-entry ledger (accounts, transactions, entries) and wallet top-ups.

All amounts are integer micro-dollars (see common.money). Every transaction's entries sum to
zero and carry a unique idempotency key; guarded accounts never go negative.
"""

from django.conf import settings
from django.db import models


class AccountKind(models.TextChoices):
    CUSTOMER_WALLET = "customer_wallet", "Customer wallet"
    CUSTOMER_ESCROW = "customer_escrow", "Customer escrow"
    PROVIDER_PAYABLE = "provider_payable", "Provider payable"
    PLATFORM_REVENUE = "platform_revenue", "Platform revenue"
    RESERVE_FUND = "reserve_fund", "Reserve fund"
    LENDER_CAPITAL = "lender_capital", "Lender capital"
    LENDER_RECEIVABLE = "lender_receivable", "Lender receivable"
    GATEWAY_CLEARING = "gateway_clearing", "Gateway clearing (money outside the platform)"


# Accounts whose balance may never go negative (checked in the writing transaction).
GUARDED_KINDS = frozenset(
    {
        AccountKind.CUSTOMER_WALLET,
        AccountKind.CUSTOMER_ESCROW,
        AccountKind.PROVIDER_PAYABLE,
        AccountKind.LENDER_CAPITAL,
        AccountKind.RESERVE_FUND,
    }
)


class Account(models.Model):
    kind = models.CharField(max_length=24, choices=AccountKind.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    # "user:<id>" for owned accounts, "platform" for system accounts: unique with kind and currency.
    owner_key = models.CharField(max_length=40)
    currency = models.CharField(max_length=3, default="USD")
    balance = models.BigIntegerField(default=0, help_text="Cached sum of entries, micro-units")
    guarded = models.BooleanField(default=False, help_text="Balance may never go negative")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "owner_key", "currency"], name="account_unique_kind_owner"),
            models.CheckConstraint(
                condition=models.Q(guarded=False) | models.Q(balance__gte=0), name="account_guarded_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.owner_key}"


class LedgerTransaction(models.Model):
    idempotency_key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=40, db_index=True)
    memo = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}"


class Entry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField(help_text="Signed micro-units: + credits the account, - debits it")

    class Meta:
        indexes = [models.Index(fields=["account", "transaction"])]


class TopUpStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class TopUp(models.Model):
    """A customer's wallet top-up through a payment gateway; credited once, by the gateway's word."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="topups")
    amount_micros = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=12, choices=TopUpStatus.choices, default=TopUpStatus.PENDING)
    gateway = models.CharField(max_length=20)
    gateway_ref = models.CharField(max_length=200, blank=True, db_index=True)
    checkout_url = models.URLField(max_length=500, blank=True)
    ledger_transaction = models.OneToOneField(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=models.Q(amount_micros__gt=0), name="topup_positive")]
