"""Financing: lenders and their capital, upgrade advances (applications, underwriting, funding, collateral, the
repayment waterfall) and reserved contracts.

Services: financing/services/*.py (rules documented there). Money moves only through billing's ledger:
  capital commitment  gateway_clearing → lender_capital(lender)
  disbursement        lender_capital(each funder) → gateway_clearing (paid out to the provider or a vendor)
  withholding         part of each settlement's provider share → lender_receivable(each funder), pro rata
                      (billing's settlement calls the withholding hook financing registers, see apps.py)
  early payoff        provider_payable → lender_receivable(each funder), pro rata
  reinvest            lender_receivable(lender) → lender_capital(lender)
  reserved contract   customer_wallet → platform fee + reserve + provider share (itself subject to withholding)

Tables are named financing_* (migrations/0001 took them over from billing with their rows).
"""

from django.conf import settings
from django.db import models

from billing.models import LedgerTransaction


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
    stripe_account_id = models.CharField(max_length=64, blank=True, help_text="Connected account repayments go to")
    payout_account_ready = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)


class CapitalCommitmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class CapitalCommitment(models.Model):
    """Capital a lender sends in through the gateway; credited to its lender_capital account once (local: at
    once; Stripe: by the verified webhook of its Checkout Session)."""

    lender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="capital_commitments")
    amount_micros = models.BigIntegerField()
    status = models.CharField(
        max_length=10, choices=CapitalCommitmentStatus.choices, default=CapitalCommitmentStatus.PENDING
    )
    gateway = models.CharField(max_length=20)
    gateway_ref = models.CharField(max_length=200, blank=True)
    checkout_url = models.URLField(max_length=500, blank=True)
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

    The reservation is this record: [starts_at, ends_at) on `node` for `gpu_count` GPUs. The broker chooses the
    node and respects the capacity (broker/services/reserved.py); financing owns the contract and its money.
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


class ContractDemandStatus(models.TextChoices):
    OPEN = "open", "Open: no provider has the capacity yet"
    AWARDED = "awarded", "Awarded to a provider (hardware being financed and delivered)"
    DELIVERED = "delivered", "Delivered: the reserved contract runs on the provider's node"
    RELEASED = "released", "Released (not delivered in time, or the customer could not pay)"
    CANCELLED = "cancelled", "Cancelled by the customer"


class ContractDemand(models.Model):
    """A customer's reserved contract that no provider has capacity for yet: open demand a provider may fulfil by
    buying the hardware (financed by a contract-backed advance). Terms as for a ReservedContract
    (services/reserved.py); the contract itself starts on delivery (services/demand.py)."""

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="contract_demands")
    gpu_model = models.ForeignKey("marketplace.GPUModel", on_delete=models.PROTECT, related_name="+")
    gpu_count = models.PositiveSmallIntegerField()
    term_months = models.PositiveSmallIntegerField()
    list_price_micros = models.BigIntegerField(help_text="Price per GPU-hour the customer commits to, before discount")
    discount_bps = models.PositiveIntegerField()
    monthly_micros = models.BigIntegerField(help_text="What the customer pays each month once delivered")
    delivery_days = models.PositiveSmallIntegerField(help_text="Days from disbursement the provider has to deliver")
    status = models.CharField(max_length=10, choices=ContractDemandStatus.choices, default=ContractDemandStatus.OPEN)
    awarded_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="awarded_demands"
    )
    deadline_at = models.DateTimeField(null=True, blank=True, help_text="Delivery deadline (set at disbursement)")
    contract = models.OneToOneField(
        ReservedContract, null=True, blank=True, on_delete=models.PROTECT, related_name="demand"
    )
    status_note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="demand_gpus_positive"),
            models.CheckConstraint(condition=models.Q(term_months__gte=1), name="demand_term_positive"),
            models.CheckConstraint(condition=models.Q(monthly_micros__gt=0), name="demand_monthly_positive"),
        ]

    @property
    def receivable_micros(self) -> int:
        return self.monthly_micros * self.term_months


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
    demand = models.ForeignKey(
        ContractDemand, null=True, blank=True, on_delete=models.PROTECT, related_name="applications"
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
    RECALL = "recall", "Recalled from the provider's balance (contract not delivered)"


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
        indexes = [models.Index(fields=["lease_ref"], name="repayment_lease_ref_idx")]


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


class PartySignalKind(models.TextChoices):
    NETWORK = "network", "Network address"
    PAYMENT_METHOD = "payment_method", "Payment method"


class PartySignal(models.Model):
    """Something that identifies who is behind an account (a login's public network address, a card's
    fingerprint), stored as a keyed hash only; two accounts sharing one are related parties
    (financing/selectors/parties.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="party_signals")
    kind = models.CharField(max_length=16, choices=PartySignalKind.choices)
    value_hash = models.CharField(max_length=64, db_index=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind", "value_hash"], name="party_signal_once_per_user")
        ]


class LenderPayoutStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed (returned to the lender's balance)"


class LenderPayout(models.Model):
    """Repayments a lender received, paid out to it through the gateway (Stripe: a Connect transfer); one per
    lender and payout day, so a retried run never pays twice (services/lender_payouts.py)."""

    lender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="lender_payouts")
    period = models.DateField(help_text="The payout day")
    amount_micros = models.BigIntegerField()
    status = models.CharField(max_length=8, choices=LenderPayoutStatus.choices, default=LenderPayoutStatus.PENDING)
    gateway = models.CharField(max_length=20)
    gateway_ref = models.CharField(max_length=200, blank=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    ledger_transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reversal_transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["lender", "period"], name="lender_payout_once_per_day"),
            models.CheckConstraint(condition=models.Q(amount_micros__gt=0), name="lender_payout_positive"),
        ]
