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
        default=0, help_text="Escrow backing this lease; charges never exceed it (0 = no cap)"
    )
    rated_gpu_ms = models.BigIntegerField(default=0, help_text="Cumulative GPU-milliseconds rated")
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

    def __str__(self) -> str:
        return f"lease {self.lease_ref} ({self.status})"


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


# --- Financing: upgrade advances repaid from metered earnings, lenders, reserved contracts ---------------------------
# Services: billing/services/financing_*.py (rules documented there). Money moves only through the ledger:
#   capital commitment  gateway_clearing → lender_capital(lender)
#   disbursement        lender_capital(each funder) → gateway_clearing (paid out to the provider or a vendor)
#   withholding         part of each settlement's provider share → lender_receivable(each funder), pro rata
#   early payoff        provider_payable → lender_receivable(each funder), pro rata
#   reinvest            lender_receivable(lender) → lender_capital(lender)
#   reserved contract   customer_wallet → platform fee + reserve + provider share (itself subject to withholding)


class LenderFundingMode(models.TextChoices):
    AUTO = "auto", "Automatic: fund every matching advance pro rata"
    HAND_PICKED = "hand_picked", "Hand-picked: I choose each advance"


class LenderPreference(models.Model):
    """What a lender will fund. Empty `tiers` means any AI-grade tier; 0 for max_per_advance means no cap."""

    lender = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lender_preference")
    mode = models.CharField(max_length=12, choices=LenderFundingMode.choices, default=LenderFundingMode.HAND_PICKED)
    max_per_advance_micros = models.BigIntegerField(default=0)
    tiers = models.JSONField(default=list, blank=True)
    max_payoff_months = models.PositiveSmallIntegerField(default=24)
    updated_at = models.DateTimeField(auto_now=True)


class CapitalCommitmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class CapitalCommitment(models.Model):
    """Capital a lender sends in through the gateway; credited to its lender_capital account once."""

    lender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="capital_commitments")
    amount_micros = models.BigIntegerField()
    status = models.CharField(
        max_length=10, choices=CapitalCommitmentStatus.choices, default=CapitalCommitmentStatus.PENDING
    )
    gateway = models.CharField(max_length=20)
    gateway_ref = models.CharField(max_length=200, blank=True)
    ledger_transaction = models.OneToOneField(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(amount_micros__gt=0), name="capital_positive")]


class ReservedContractStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    LAPSED = "lapsed", "Lapsed (customer did not pay)"


class ReservedContract(models.Model):
    """A customer's commitment to `gpu_count` GPUs on one provider node for `term_months`, paid monthly.

    The reservation is this record: [starts_at, ends_at) on `node` for `gpu_count` GPUs (see
    broker/services/reserved.py for how capacity is chosen and respected).
    """

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reserved_contracts")
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="provider_reserved_contracts"
    )
    node = models.ForeignKey("marketplace.Node", on_delete=models.PROTECT, related_name="reserved_contracts")
    gpu_model = models.ForeignKey("marketplace.GPUModel", on_delete=models.PROTECT, related_name="+")
    gpu_count = models.PositiveSmallIntegerField()
    term_months = models.PositiveSmallIntegerField()
    list_price_micros = models.BigIntegerField(help_text="On-demand price per GPU-hour at booking")
    discount_bps = models.PositiveIntegerField()
    monthly_micros = models.BigIntegerField(help_text="What the customer pays each month")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    months_paid = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=ReservedContractStatus.choices, default=ReservedContractStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="reserved_gpus_positive"),
            models.CheckConstraint(condition=models.Q(term_months__gte=1), name="reserved_term_positive"),
            models.CheckConstraint(condition=models.Q(monthly_micros__gt=0), name="reserved_monthly_positive"),
        ]


class ReservedContractCharge(models.Model):
    contract = models.ForeignKey(ReservedContract, on_delete=models.PROTECT, related_name="charges")
    month_index = models.PositiveSmallIntegerField()
    amount_micros = models.BigIntegerField()
    ledger_transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["month_index"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "month_index"], name="reserved_charge_once_per_month")
        ]


class ApplicationStatus(models.TextChoices):
    OFFERED = "offered", "Offered (awaiting staff approval)"
    DECLINED = "declined", "Declined by underwriting"
    APPROVED = "approved", "Approved (advance open for funding)"
    REJECTED = "rejected", "Rejected by staff"


class AdvanceApplication(models.Model):
    """A provider's request and the underwriting answer: an offer or decline reasons, with inputs and arithmetic."""

    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="advance_applications"
    )
    gpu_model = models.ForeignKey("marketplace.GPUModel", on_delete=models.PROTECT, related_name="+")
    gpu_count = models.PositiveIntegerField()
    node = models.ForeignKey("marketplace.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    assessment = models.ForeignKey(
        "marketplace.FleetAssessment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    unit_cost_micros = models.BigIntegerField()
    requested_micros = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=ApplicationStatus.choices)
    offered_gpu_count = models.PositiveIntegerField(default=0)
    principal_micros = models.BigIntegerField(default=0)
    fee_micros = models.BigIntegerField(default=0)
    withhold_bps = models.PositiveIntegerField(default=0)
    expected_payoff_months = models.DecimalField(max_digits=6, decimal_places=1, null=True, blank=True)
    min_progress_micros = models.BigIntegerField(default=0, help_text="Minimum repaid per 60 days")
    decline_reasons = models.JSONField(default=list, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    arithmetic = models.JSONField(default=list, blank=True)
    rules_version = models.CharField(max_length=20)
    reserved_contract = models.ForeignKey(
        ReservedContract, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    staff_note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="application_count_positive")]


class AdvanceStatus(models.TextChoices):
    FUNDING = "funding", "Approved, open for funding"
    ACTIVE = "active", "Active (repaying)"
    DELINQUENT = "delinquent", "Delinquent"
    REPAID = "repaid", "Repaid"
    DEFAULTED = "defaulted", "Defaulted (remaining written off)"
    CANCELLED = "cancelled", "Cancelled"


OPEN_ADVANCE_STATUSES = (AdvanceStatus.ACTIVE, AdvanceStatus.DELINQUENT)


class DisburseTo(models.TextChoices):
    PROVIDER = "provider", "The provider"
    VENDOR = "vendor", "A hardware vendor"


class Advance(models.Model):
    """An approved offer: funded by lenders, disbursed, repaid by withholding until principal + fee are repaid."""

    application = models.OneToOneField(AdvanceApplication, on_delete=models.PROTECT, related_name="advance")
    provider = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="advances")
    gpu_model = models.ForeignKey("marketplace.GPUModel", on_delete=models.PROTECT, related_name="+")
    gpu_count = models.PositiveIntegerField()
    node = models.ForeignKey("marketplace.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    principal_micros = models.BigIntegerField()
    fee_micros = models.BigIntegerField()
    base_withhold_bps = models.PositiveIntegerField()
    withhold_bps = models.PositiveIntegerField(help_text="Current rate (raised while delinquent)")
    expected_payoff_months = models.DecimalField(max_digits=6, decimal_places=1)
    min_progress_micros = models.BigIntegerField()
    funded_micros = models.BigIntegerField(default=0)
    repaid_micros = models.BigIntegerField(default=0)
    written_off_micros = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=AdvanceStatus.choices, default=AdvanceStatus.FUNDING)
    disburse_to = models.CharField(max_length=10, choices=DisburseTo.choices, default=DisburseTo.PROVIDER)
    vendor_name = models.CharField(max_length=200, blank=True)
    disbursement_ref = models.CharField(max_length=200, blank=True)
    disbursement_transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField()
    disbursed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Minimum-progress bookkeeping: the current 60-day window and what had been repaid when it began.
    window_start = models.DateTimeField(null=True, blank=True)
    window_repaid_base = models.BigIntegerField(default=0)
    consecutive_shortfalls = models.PositiveSmallIntegerField(default=0)
    collateral_offline_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-approved_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(principal_micros__gt=0), name="advance_principal_positive"),
            models.CheckConstraint(
                condition=models.Q(repaid_micros__lte=models.F("principal_micros") + models.F("fee_micros")),
                name="advance_repaid_at_most_due",
            ),
            models.CheckConstraint(
                condition=models.Q(funded_micros__lte=models.F("principal_micros")), name="advance_funded_at_most"
            ),
        ]

    def __str__(self) -> str:
        return f"advance {self.pk} ({self.status})"

    @property
    def due_micros(self) -> int:
        return self.principal_micros + self.fee_micros

    @property
    def remaining_micros(self) -> int:
        return self.due_micros - self.repaid_micros - self.written_off_micros

    @property
    def unfunded_micros(self) -> int:
        return self.principal_micros - self.funded_micros


class AdvanceFunding(models.Model):
    """One lender's share of an advance; it receives repayments pro rata to `amount_micros`."""

    advance = models.ForeignKey(Advance, on_delete=models.PROTECT, related_name="fundings")
    lender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="advance_fundings")
    amount_micros = models.BigIntegerField()
    received_micros = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["advance", "lender"], name="advance_funding_once_per_lender"),
            models.CheckConstraint(condition=models.Q(amount_micros__gt=0), name="advance_funding_positive"),
        ]


class RepaymentKind(models.TextChoices):
    WITHHOLDING = "withholding", "Withheld from a settlement"
    EARLY_PAYOFF = "early_payoff", "Early payoff from the provider's balance"


class AdvanceRepayment(models.Model):
    """What one funder received from one source (a settlement or reserved-contract charge key, or a payoff)."""

    advance = models.ForeignKey(Advance, on_delete=models.PROTECT, related_name="repayments")
    funding = models.ForeignKey(AdvanceFunding, on_delete=models.PROTECT, related_name="repayments")
    kind = models.CharField(max_length=12, choices=RepaymentKind.choices)
    source_key = models.CharField(max_length=200, help_text="Idempotency key of the ledger transaction")
    lease_ref = models.BigIntegerField(null=True, blank=True)
    amount_micros = models.BigIntegerField()
    created_at = models.DateTimeField(default=None, null=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["source_key", "funding"], name="repayment_once_per_source_funding")
        ]
        indexes = [models.Index(fields=["lease_ref"])]


class AdvanceEvent(models.Model):
    """The advance's history, shown to its provider, its lenders and staff (shortfall flags included)."""

    advance = models.ForeignKey(Advance, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]


class Collateral(models.Model):
    """Financed GPUs on a registered, verified node of the provider, tagged to the advance."""

    advance = models.ForeignKey(Advance, on_delete=models.PROTECT, related_name="collateral")
    node = models.ForeignKey("marketplace.Node", on_delete=models.PROTECT, related_name="collateral")
    gpu_count = models.PositiveSmallIntegerField()
    tagged_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["advance", "node"], name="collateral_once_per_node")]
