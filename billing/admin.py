"""Django admin for billing. Every money row is read-only: money moves only through billing services."""

from django.contrib import admin

from billing.models import (
    Account,
    Entry,
    Invoice,
    InvoiceLine,
    LeaseAccount,
    LedgerTransaction,
    Payout,
    Settlement,
    SlaCredit,
    StripeEvent,
    TopUp,
    UsageAnomaly,
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


@admin.register(UsageAnomaly)
class UsageAnomalyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[UsageAnomaly]):
    """Usage the broker capped or refused (issue 12): nothing here moved money."""

    list_display = ("id", "kind", "lease_ref", "job_ref", "node_id", "provider", "claimed_micros", "charged_micros")
    list_filter = ("kind",)
    search_fields = ("lease_ref", "job_ref", "detail", "provider__username")
