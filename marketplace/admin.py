"""Django admin for marketplace models. Catalog and parties are editable; agent-written data is read-only."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from common.money import format_usd
from marketplace.models import (
    Customer,
    FleetAssessment,
    FleetAssessmentLine,
    GPUModel,
    Lender,
    Node,
    NodeChallenge,
    NodeChange,
    NodeHeartbeat,
    NodeUptime,
    Provider,
)


class ReadOnlyAdminMixin:
    """Viewable, searchable, never added, changed or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GPUModel)
class GPUModelAdmin(admin.ModelAdmin[GPUModel]):
    list_display = ("name", "slug", "vendor", "architecture", "vram_gb", "fp16_tflops", "tier", "is_mining_card")
    list_filter = ("vendor", "tier", "is_mining_card", "tensor_cores", "framework_support")
    search_fields = ("name", "slug", "architecture")


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin[Provider]):
    list_display = (
        "company",
        "user",
        "contact_name",
        "country",
        "payout_currency",
        "payout_account_ready",
        "created_at",
    )
    list_filter = ("payout_account_ready", "payout_currency", "country")
    search_fields = ("company", "contact_name", "user__username", "user__email")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ("__str__", "user", "company", "stripe_customer_id", "created_at")
    search_fields = ("company", "user__username", "user__email", "stripe_customer_id")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)


@admin.register(Lender)
class LenderAdmin(admin.ModelAdmin[Lender]):
    list_display = ("name", "user", "created_at")
    search_fields = ("name", "user__username")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)


class FleetAssessmentLineInline(ReadOnlyAdminMixin, admin.TabularInline[FleetAssessmentLine, FleetAssessment]):
    model = FleetAssessmentLine
    fields = ("position", "raw_model", "count", "gpu_model")
    extra = 0


@admin.register(FleetAssessment)
class FleetAssessmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[FleetAssessment]):
    list_display = ("id", "provider", "created_at", "total_gpus", "qualifying_gpus", "utilisation")
    search_fields = ("provider__company", "provider__user__username")
    date_hierarchy = "created_at"
    inlines = [FleetAssessmentLineInline]


@admin.register(FleetAssessmentLine)
class FleetAssessmentLineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[FleetAssessmentLine]):
    list_display = ("assessment", "position", "raw_model", "count", "gpu_model")
    list_filter = ("gpu_model__tier",)
    search_fields = ("raw_model",)


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin[Node]):
    list_display = (
        "name",
        "provider",
        "gpu_model",
        "gpu_count",
        "region",
        "status",
        "verified",
        "listed",
        "cordoned",
        "price",
        "reliability",
        "last_heartbeat_at",
        "has_mismatch",
    )
    list_filter = ("status", "verified", "listed", "cordoned", "region", "gpu_model__tier", "gpu_model")
    search_fields = ("name", "provider__company", "provider__user__username", "token_prefix")
    raw_id_fields = ("provider",)
    list_select_related = ("provider", "gpu_model")
    # Agent-reported, token and verification fields change only through services (agent API, console).
    readonly_fields = (
        "token_prefix",
        "token_hash",
        "token_revoked_at",
        "status",
        "last_heartbeat_at",
        "agent_registered_at",
        "agent_report",
        "hardware_mismatch",
        "dlperf",
        "challenge_verdict",
        "benchmark_flag",
        "verified",
        "verified_at",
        "reliability",
        "created_at",
        "updated_at",
    )

    @admin.display(description="Price / GPU-h", ordering="price_micros")
    def price(self, obj: Node) -> str:
        return format_usd(micros=obj.price_micros, places=4)

    @admin.display(description="Mismatch", boolean=True)
    def has_mismatch(self, obj: Node) -> bool:
        return bool(obj.hardware_mismatch)


@admin.register(NodeUptime)
class NodeUptimeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[NodeUptime]):
    list_display = ("node", "hour", "up_seconds")
    search_fields = ("node__name",)
    date_hierarchy = "hour"
    list_select_related = ("node__gpu_model",)


@admin.register(NodeChallenge)
class NodeChallengeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[NodeChallenge]):
    """Compute challenges are issued and judged by services only (agent API, console button, beat)."""

    list_display = ("id", "node", "reason", "state", "measured_tflops", "created_at", "finished_at")
    list_filter = ("state", "reason")
    search_fields = ("node__name", "verdict")
    date_hierarchy = "created_at"
    list_select_related = ("node__gpu_model",)


@admin.register(NodeHeartbeat)
class NodeHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[NodeHeartbeat]):
    list_display = ("node", "seq", "status", "received_at")
    list_filter = ("status",)
    search_fields = ("node__name",)
    date_hierarchy = "received_at"
    list_select_related = ("node__gpu_model",)


@admin.register(NodeChange)
class NodeChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[NodeChange]):
    """Agent reports that changed what a node is (issue 12); staff review by verifying the node again."""

    list_display = ("id", "node", "provider", "fields", "old", "new", "was_verified", "created_at", "reviewed_at")
    list_filter = ("was_verified",)
    search_fields = ("node__name", "provider__company")
