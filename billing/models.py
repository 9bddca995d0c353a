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
    # Unique through Meta.constraints, not `unique=True`: on PostgreSQL that would add a second
    # (varchar_pattern_ops) index on the key that no query uses and every insert pays for.
    idempotency_key = models.CharField(max_length=200)
    kind = models.CharField(max_length=40)
    memo = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["idempotency_key"], name="ledger_txn_idempotency_key_unique")]
        indexes = [models.Index(fields=["kind"], name="ledger_txn_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}"


class Entry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    # No separate index on account: the (account, transaction) index below serves account lookups.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries", db_index=False)
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


# --- Metering, settlement, SLA credits, payouts, Stripe events, invoices ------------------------------------------
# Billing never imports broker: a lease is known here only by its reference (`lease_ref`, the broker's lease id)
# together with the price and the parties it was opened with.


class LeaseAccountStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class LeaseAccount(models.Model):
    """Billing's view of one lease: who pays whom, at what price, and what has been rated and charged.

    Cumulative fields only ever grow; each settlement moves the difference (see services.settlement).
    """

    lease_ref = models.BigIntegerField(unique=True)
    job_ref = models.BigIntegerField(db_index=True)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="lease_accounts")
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="provider_lease_accounts"
    )
    node_id = models.BigIntegerField(db_index=True)
    gpu_model_name = models.CharField(max_length=80, blank=True)
    price_micros = models.BigIntegerField(help_text="Price per GPU-hour, micro-USD")
    gpu_count = models.PositiveSmallIntegerField()
    hold_micros = models.BigIntegerField(
        default=0, help_text="The job's escrow hold: the job's leases together are never charged more"
    )
    rated_gpu_ms = models.BigIntegerField(
        default=0, help_text="Cumulative GPU-milliseconds billed: never more than the broker observed"
    )
    # The broker's clock (services/metering.py, THE RULE): billed time runs from `active_from` to `seen_until`.
    active_from = models.DateTimeField(null=True, blank=True, help_text="Activation: the broker saw it start")
    period_end = models.DateTimeField(null=True, blank=True, help_text="The lease's scheduled end")
    seen_until = models.DateTimeField(
        null=True, blank=True, help_text="Broker clock: the node's last heartbeat, capped by the period and the close"
    )
    claimed_gpu_ms = models.BigIntegerField(default=0, help_text="Cumulative GPU-ms the agent's accepted reports claim")
    storage_gb_cap = models.BigIntegerField(
        null=True, blank=True, help_text="Most GB of storage the listing makes possible (null = no bound)"
    )
    egress_bytes_per_s_cap = models.BigIntegerField(
        null=True, blank=True, help_text="Most egress bytes per second the listing makes possible (null = no bound)"
    )
    storage_price_micros = models.BigIntegerField(default=0, help_text="Price per GB-month of storage, micro-USD")
    egress_price_micros = models.BigIntegerField(default=0, help_text="Price per GB of egress, micro-USD")
    rated_storage_gb_ms = models.BigIntegerField(default=0, help_text="Cumulative storage GB-milliseconds rated")
    rated_egress_bytes = models.BigIntegerField(default=0, help_text="Cumulative egress bytes rated")
    charged_micros = models.BigIntegerField(default=0, help_text="Total charged: GPU time + storage + egress")
    charged_storage_micros = models.BigIntegerField(default=0, help_text="Part of charged_micros for storage")
    charged_egress_micros = models.BigIntegerField(default=0, help_text="Part of charged_micros for egress")
    fee_micros = models.BigIntegerField(default=0)
    reserve_micros = models.BigIntegerField(default=0)
    provider_micros = models.BigIntegerField(default=0, help_text="Provider share (payable + lender withholding)")
    released_micros = models.BigIntegerField(default=0, help_text="Unused hold returned to the wallet at close")
    status = models.CharField(max_length=8, choices=LeaseAccountStatus.choices, default=LeaseAccountStatus.OPEN)
    failed = models.BooleanField(default=False, help_text="Closed because its node failed")
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    charged_micros=models.F("fee_micros") + models.F("reserve_micros") + models.F("provider_micros")
                ),
                name="lease_account_split_adds_up",
            ),
            models.CheckConstraint(condition=models.Q(price_micros__gte=0), name="lease_account_price_non_negative"),
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="lease_account_gpus_positive"),
        ]
        # settlement looks for open leases whose claims ran ahead of the broker clock (services.settlement)
        indexes = [
            models.Index(fields=["lease_ref"], condition=models.Q(status="open"), name="lease_account_open_idx"),
        ]

    def __str__(self) -> str:
        return f"lease {self.lease_ref} ({self.status})"


class UsageAnomalyKind(models.TextChoices):
    OVER_HOLD = "over_hold", "Usage beyond the job's escrow (capped)"
    OVER_CLOCK = "over_clock", "Claimed more than the broker observed (capped)"
    REFUSED_REPORT = "refused_report", "Usage report refused"


class UsageAnomaly(models.Model):
    """Usage the broker would not charge as claimed: capped or refused, shown to staff, counted against the provider.

    Nothing here moves money: what was capped stayed in the customer's escrow (released with the job's hold).
    """

    kind = models.CharField(max_length=20, choices=UsageAnomalyKind.choices)
    lease_ref = models.BigIntegerField(db_index=True)
    job_ref = models.BigIntegerField(null=True, blank=True)
    node_id = models.BigIntegerField(null=True, blank=True)
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="usage_anomalies"
    )
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    claimed_micros = models.BigIntegerField(default=0, help_text="What the usage would have cost as claimed")
    charged_micros = models.BigIntegerField(default=0, help_text="What was charged instead")
    detail = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} lease {self.lease_ref}"


class UsageStatus(models.TextChoices):
    PENDING = "pending", "Pending (not rated yet)"
    RATED = "rated", "Rated"
    EXCLUDED = "excluded", "Excluded (not charged)"


class UsageRecord(models.Model):
    """One heartbeat's usage of one lease; (node, lease, seq) is recorded once whatever arrives twice."""

    node_id = models.BigIntegerField()
    lease_ref = models.BigIntegerField()
    seq = models.BigIntegerField()
    gpu_ms = models.BigIntegerField(help_text="GPU-milliseconds in the interval")
    storage_gb_ms = models.BigIntegerField(default=0, help_text="Storage held in the interval, GB-milliseconds")
    egress_bytes = models.BigIntegerField(default=0, help_text="Bytes sent in the interval")
    utilisation = models.FloatField(null=True, blank=True, help_text="Mean GPU utilisation 0–1 (not money)")
    interval_start = models.DateTimeField(null=True, blank=True)
    interval_end = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=10, choices=UsageStatus.choices, default=UsageStatus.PENDING)
    exclusion_reason = models.CharField(max_length=200, blank=True)
    settlement = models.ForeignKey("Settlement", null=True, blank=True, on_delete=models.PROTECT, related_name="usage")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node_id", "lease_ref", "seq"], name="usage_once_per_node_lease_seq"),
            models.CheckConstraint(condition=models.Q(gpu_ms__gte=0), name="usage_gpu_ms_non_negative"),
        ]
        indexes = [models.Index(fields=["lease_ref", "status"])]


class Settlement(models.Model):
    """One settlement of one lease: the usage it rated and the ledger transaction that moved the money."""

    lease_account = models.ForeignKey(LeaseAccount, on_delete=models.PROTECT, related_name="settlements")
    ledger_transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="settlement"
    )
    gpu_ms = models.BigIntegerField()
    upto_gpu_ms = models.BigIntegerField(help_text="Cumulative rated GPU-ms after this settlement")
    upto_storage_gb_ms = models.BigIntegerField(default=0, help_text="Cumulative rated storage GB-ms after it")
    upto_egress_bytes = models.BigIntegerField(default=0, help_text="Cumulative rated egress bytes after it")
    charged_micros = models.BigIntegerField(help_text="Total: GPU time + storage + egress")
    storage_micros = models.BigIntegerField(default=0, help_text="Part of charged_micros for storage")
    egress_micros = models.BigIntegerField(default=0, help_text="Part of charged_micros for egress")
    fee_micros = models.BigIntegerField()
    reserve_micros = models.BigIntegerField()
    provider_micros = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["lease_account", "upto_gpu_ms", "upto_storage_gb_ms", "upto_egress_bytes"],
                name="settlement_once_per_cumulative_usage",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    charged_micros=models.F("fee_micros") + models.F("reserve_micros") + models.F("provider_micros")
                ),
                name="settlement_split_adds_up",
            ),
        ]


class SlaCredit(models.Model):
    """The credit a customer got (and the penalty its provider bore) for a lease its node failed."""

    lease_account = models.OneToOneField(LeaseAccount, on_delete=models.PROTECT, related_name="sla_credit")
    ledger_transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="sla_credit")
    credit_micros = models.BigIntegerField()
    penalty_micros = models.BigIntegerField()
    policy = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)


class PayoutStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_TRANSIT = "in_transit", "In transit"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed (returned to balance)"


class Payout(models.Model):
    """Money leaving a provider's payable through the gateway; a failure returns it, visibly."""

    provider = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payouts")
    amount_micros = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=12, choices=PayoutStatus.choices, default=PayoutStatus.PENDING)
    gateway = models.CharField(max_length=20)
    gateway_ref = models.CharField(max_length=200, blank=True, db_index=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    ledger_transaction = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, related_name="payout", null=True, blank=True
    )
    reversal_transaction = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, related_name="payout_reversal", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(amount_micros__gt=0), name="payout_positive")]


class StripeEvent(models.Model):
    """A processed Stripe webhook event; its unique id makes a redelivery a no-op."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    outcome = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)


class InvoiceKind(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    ON_DEMAND = "on_demand", "On demand"


class Invoice(models.Model):
    """A customer's closed statement for a period. Lines are exact; the total is rounded to cents once."""

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=40, unique=True)
    kind = models.CharField(max_length=10, choices=InvoiceKind.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = models.CharField(max_length=3, default="USD")
    usage_micros = models.BigIntegerField(default=0)
    credits_micros = models.BigIntegerField(default=0, help_text="SLA credits (positive number, subtracted)")
    tax_micros = models.BigIntegerField(default=0)
    exact_total_micros = models.BigIntegerField(default=0, help_text="usage - credits + tax, exact")
    total_cents = models.BigIntegerField(default=0, help_text="exact total rounded half-up to cents, once")
    rounding_micros = models.BigIntegerField(default=0, help_text="total_cents*10^4 - exact total (shown as a line)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_end", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period_start"],
                condition=models.Q(kind="monthly"),
                name="invoice_one_monthly_per_customer_period",
            )
        ]

    def __str__(self) -> str:
        return self.number


class InvoiceLineKind(models.TextChoices):
    USAGE = "usage", "GPU usage"
    STORAGE = "storage", "Storage (GB-month)"
    EGRESS = "egress", "Egress (GB)"
    CREDIT = "credit", "SLA credit"
    TAX = "tax", "Tax"
    ROUNDING = "rounding", "Rounding to cents"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=InvoiceLineKind.choices)
    lease_ref = models.BigIntegerField(null=True, blank=True)
    description = models.CharField(max_length=300)
    gpu_count = models.PositiveSmallIntegerField(null=True, blank=True)
    gpu_model_name = models.CharField(max_length=80, blank=True)
    seconds = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True, help_text="Wall seconds")
    rate_micros = models.BigIntegerField(null=True, blank=True, help_text="Per GPU-hour")
    amount_micros = models.BigIntegerField()

    class Meta:
        ordering = ["position"]
