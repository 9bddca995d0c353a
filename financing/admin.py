"""Django admin for financing. Money rows are read-only: decisions go through financing services (the staff
console, or the admin actions below, which call the same services)."""

from typing import Any

from django.contrib import admin, messages

from common.money import format_usd
from financing.models import (
    Advance,
    AdvanceApplication,
    AdvanceEvent,
    AdvanceFunding,
    AdvanceRepayment,
    CapitalCommitment,
    Collateral,
    ContractDemand,
    LenderPayout,
    LenderPreference,
    PartySignal,
    ReservedContract,
    ReservedContractCharge,
)
from marketplace.admin import ReadOnlyAdminMixin


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
        from common.errors import DomainError
        from financing.services.applications import advance_application_approve

        for app in queryset.order_by("pk"):
            try:
                advance = advance_application_approve(staff_user=request.user, application_id=app.pk)
                self.message_user(request, f"Application {app.pk}: advance {advance.pk} is {advance.status}.")
            except DomainError as exc:
                self.message_user(request, f"Application {app.pk}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Reject selected offers")
    def reject_offers(self, request: Any, queryset: Any) -> None:
        from common.errors import DomainError
        from financing.services.applications import advance_application_reject

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
        from common.errors import DomainError
        from financing.services.advances import advance_staff_action

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


@admin.register(ContractDemand)
class ContractDemandAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[ContractDemand]):
    list_display = ("id", "customer", "gpu_model", "gpu_count", "term_months", "status", "awarded_to", "deadline_at")
    list_filter = ("status",)
    search_fields = ("customer__username", "awarded_to__username")


@admin.register(LenderPayout)
class LenderPayoutAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[LenderPayout]):
    list_display = ("id", "lender", "period", "amount_micros", "status", "gateway", "gateway_ref")
    list_filter = ("status", "gateway")
    search_fields = ("lender__username", "gateway_ref")


@admin.register(PartySignal)
class PartySignalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[PartySignal]):
    list_display = ("id", "user", "kind", "first_seen", "last_seen")
    list_filter = ("kind",)
    search_fields = ("user__username",)
