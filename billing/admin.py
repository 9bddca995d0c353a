"""Django admin for billing. Every money row is read-only: money moves only through billing services."""

from typing import Any

from django.contrib import admin, messages

from billing.models import (
    Account,
    Advance,
    AdvanceApplication,
    AdvanceEvent,
    AdvanceFunding,
    AdvanceRepayment,
    CapitalCommitment,
    Collateral,
    Entry,
    Invoice,
    InvoiceLine,
    LeaseAccount,
    LedgerTransaction,
    LenderPreference,
    Payout,
    ReservedContract,
    ReservedContractCharge,
    Settlement,
    SlaCredit,
    StripeEvent,
    TopUp,
    UsageRecord,
)
from common.money import format_usd
from marketplace.admin import ReadOnlyAdminMixin


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Account]):
    list_display = ("id", "kind", "owner", "owner_key", "currency", "balance_usd", "guarded")
    list_filter = ("kind", "currency", "guarded")
    search_fields = ("owner_key", "owner__username")

    @admin.display(description="Balance", ordering="balance")
    def balance_usd(self, obj: Account) -> str:
        return format_usd(micros=obj.balance, places=6)


class EntryInline(ReadOnlyAdminMixin, admin.TabularInline[Entry, LedgerTransaction]):
    model = Entry
    fields = ("account", "amount")
    extra = 0


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[LedgerTransaction]):
    list_display = ("id", "created_at", "kind", "idempotency_key", "memo")
    list_filter = ("kind",)
    search_fields = ("idempotency_key", "memo")
    date_hierarchy = "created_at"
    inlines = [EntryInline]


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Entry]):
    list_display = ("id", "transaction", "account", "amount_usd")
    list_filter = ("account__kind",)
    search_fields = ("transaction__idempotency_key", "account__owner_key")
    list_select_related = ("transaction", "account")

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj: Entry) -> str:
        return format_usd(micros=obj.amount, places=6)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[TopUp]):
    list_display = ("id", "user", "amount_usd", "currency", "status", "gateway", "gateway_ref", "created_at")
    list_filter = ("status", "gateway", "currency")
    search_fields = ("user__username", "gateway_ref")
    date_hierarchy = "created_at"

    @admin.display(description="Amount", ordering="amount_micros")
    def amount_usd(self, obj: TopUp) -> str:
        return format_usd(micros=obj.amount_micros)


@admin.register(LeaseAccount)
class LeaseAccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[LeaseAccount]):
    list_display = ("lease_ref", "job_ref", "customer", "provider", "node_id", "status", "failed", "charged_micros")
    list_filter = ("status", "failed")
    search_fields = ("lease_ref", "job_ref", "customer__username", "provider__username")
    date_hierarchy = "opened_at"


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[UsageRecord]):
    list_display = ("id", "node_id", "lease_ref", "seq", "gpu_ms", "status", "received_at")
    list_filter = ("status",)
    search_fields = ("lease_ref", "node_id")


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Settlement]):
    list_display = ("id", "lease_account", "gpu_ms", "charged_micros", "fee_micros", "provider_micros", "created_at")
    search_fields = ("lease_account__lease_ref",)
    date_hierarchy = "created_at"


@admin.register(SlaCredit)
class SlaCreditAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[SlaCredit]):
    list_display = ("id", "lease_account", "credit_micros", "penalty_micros", "policy", "created_at")
    search_fields = ("lease_account__lease_ref",)


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Payout]):
    list_display = ("id", "provider", "amount_usd", "currency", "status", "gateway", "gateway_ref", "created_at")
    list_filter = ("status", "gateway", "currency")
    search_fields = ("provider__username", "gateway_ref")
    date_hierarchy = "created_at"

    @admin.display(description="Amount", ordering="amount_micros")
    def amount_usd(self, obj: Payout) -> str:
        return format_usd(micros=obj.amount_micros)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[StripeEvent]):
    list_display = ("event_id", "type", "livemode", "outcome", "received_at")
    list_filter = ("type", "livemode")
    search_fields = ("event_id",)


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline[InvoiceLine, Invoice]):
    model = InvoiceLine
    fields = ("position", "kind", "description", "gpu_count", "seconds", "rate_micros", "amount_micros")
    extra = 0


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Invoice]):
    list_display = ("number", "customer", "kind", "period_start", "period_end", "total_usd")
    list_filter = ("kind", "currency")
    search_fields = ("number", "customer__username")
    inlines = [InvoiceLineInline]

    @admin.display(description="Total", ordering="total_cents")
    def total_usd(self, obj: Invoice) -> str:
        return format_usd(micros=obj.total_cents * 10_000)


@admin.register(InvoiceLine)
class InvoiceLineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[InvoiceLine]):
    list_display = ("invoice", "position", "kind", "description", "amount_micros")
    list_filter = ("kind",)
    search_fields = ("invoice__number", "description")


# --- financing and reserved contracts (read-only: decisions go through billing services and the console) ---------


@admin.register(LenderPreference)
class LenderPreferenceAdmin(admin.ModelAdmin[LenderPreference]):
    list_display = ("lender", "mode", "max_per_advance_micros", "max_payoff_months", "updated_at")
    list_filter = ("mode",)
    search_fields = ("lender__username",)
    raw_id_fields = ("lender",)


@admin.register(CapitalCommitment)
class CapitalCommitmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[CapitalCommitment]):
    list_display = ("id", "lender", "amount_usd", "status", "gateway", "gateway_ref", "created_at")
    list_filter = ("status", "gateway")
    search_fields = ("lender__username", "gateway_ref")

    @admin.display(description="Amount", ordering="amount_micros")
    def amount_usd(self, obj: CapitalCommitment) -> str:
        return format_usd(micros=obj.amount_micros)


@admin.register(ReservedContract)
class ReservedContractAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[ReservedContract]):
    list_display = ("id", "customer", "provider", "node", "gpu_count", "term_months", "monthly_micros", "status")
    list_filter = ("status", "term_months")
    search_fields = ("customer__username", "provider__username", "node__name")


@admin.register(ReservedContractCharge)
class ReservedContractChargeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[ReservedContractCharge]):
    list_display = ("id", "contract", "month_index", "amount_micros", "created_at")
    search_fields = ("contract__id",)


@admin.register(AdvanceApplication)
class AdvanceApplicationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[AdvanceApplication]):
    list_display = ("id", "provider", "gpu_model", "gpu_count", "requested_micros", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("provider__username",)
    actions = ["approve_offers", "reject_offers"]

    @admin.action(description="Approve selected offers (open for funding; paid to the provider)")
    def approve_offers(self, request: Any, queryset: Any) -> None:
        from billing.services.financing_applications import advance_application_approve
        from common.errors import DomainError

        for app in queryset.order_by("pk"):
            try:
                advance = advance_application_approve(staff_user=request.user, application_id=app.pk)
                self.message_user(request, f"Application {app.pk}: advance {advance.pk} is {advance.status}.")
            except DomainError as exc:
                self.message_user(request, f"Application {app.pk}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Reject selected offers")
    def reject_offers(self, request: Any, queryset: Any) -> None:
        from billing.services.financing_applications import advance_application_reject
        from common.errors import DomainError

        for app in queryset.order_by("pk"):
            try:
                advance_application_reject(staff_user=request.user, application_id=app.pk, note="rejected in admin")
            except DomainError as exc:
                self.message_user(request, f"Application {app.pk}: {exc.message}", level=messages.ERROR)


@admin.register(Advance)
class AdvanceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Advance]):
    list_display = ("id", "provider", "gpu_model", "principal_micros", "repaid_micros", "withhold_bps", "status")
    list_filter = ("status", "disburse_to")
    search_fields = ("provider__username", "vendor_name")
    actions = ["mark_delinquent", "cure", "default_write_off", "review_now"]

    def _act(self, request: Any, queryset: Any, action: str) -> None:
        from billing.services.financing_advances import advance_staff_action
        from common.errors import DomainError

        for advance in queryset.order_by("pk"):
            try:
                done = advance_staff_action(staff_user=request.user, advance_id=advance.pk, action=action)
                self.message_user(request, f"Advance {advance.pk} is {done.status}.")
            except DomainError as exc:
                self.message_user(request, f"Advance {advance.pk}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Mark delinquent (raise the withhold rate)")
    def mark_delinquent(self, request: Any, queryset: Any) -> None:
        self._act(request, queryset, "delinquent")

    @admin.action(description="Cure (back to active, base withhold rate)")
    def cure(self, request: Any, queryset: Any) -> None:
        self._act(request, queryset, "cure")

    @admin.action(description="Default: write off what remains")
    def default_write_off(self, request: Any, queryset: Any) -> None:
        self._act(request, queryset, "default")

    @admin.action(description="Review now (progress windows, collateral)")
    def review_now(self, request: Any, queryset: Any) -> None:
        self._act(request, queryset, "review")


@admin.register(AdvanceFunding)
class AdvanceFundingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[AdvanceFunding]):
    list_display = ("id", "advance", "lender", "amount_micros", "received_micros", "created_at")
    search_fields = ("lender__username",)


@admin.register(AdvanceRepayment)
class AdvanceRepaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[AdvanceRepayment]):
    list_display = ("id", "advance", "funding", "kind", "amount_micros", "lease_ref", "created_at")
    list_filter = ("kind",)
    search_fields = ("source_key",)


@admin.register(AdvanceEvent)
class AdvanceEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[AdvanceEvent]):
    list_display = ("id", "advance", "kind", "message", "actor", "created_at")
    list_filter = ("kind",)
    search_fields = ("message",)


@admin.register(Collateral)
class CollateralAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Collateral]):
    list_display = ("id", "advance", "node", "gpu_count", "tagged_at", "released_at")
    search_fields = ("node__name",)
