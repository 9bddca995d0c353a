"""Django admin for the broker. Jobs and leases change state only through broker services (and the console)."""

from django.contrib import admin

from broker.models import Job, JobEvent, JobLogLine, Lease, LeaseSlot, MatchRound, PriceOffer, SshKey
from marketplace.admin import ReadOnlyAdminMixin


class JobEventInline(ReadOnlyAdminMixin, admin.TabularInline[JobEvent, Job]):
    model = JobEvent
    fields = ("at", "from_state", "to_state", "note")
    readonly_fields = ("at",)
    extra = 0


@admin.register(Job)
class JobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Job]):
    list_display = ("id", "name", "customer", "state", "phase", "exit_code", "mode", "gpu_count", "created_at")
    list_filter = ("state", "mode", "verified_only", "end_reason")
    search_fields = ("name", "customer__company", "customer__user__username", "idempotency_key")
    date_hierarchy = "created_at"
    list_select_related = ("customer__user",)
    inlines = [JobEventInline]


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[JobEvent]):
    list_display = ("job", "at", "from_state", "to_state", "note")
    list_filter = ("to_state",)
    search_fields = ("job__name", "note")


@admin.register(JobLogLine)
class JobLogLineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[JobLogLine]):
    list_display = ("job", "lease", "seq", "at", "stream", "text")
    list_filter = ("stream",)
    search_fields = ("text",)
    list_select_related = ("job", "lease")


@admin.register(SshKey)
class SshKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[SshKey]):
    list_display = ("customer", "name", "fingerprint", "created_at")
    search_fields = ("name", "fingerprint", "customer__user__username")
    list_select_related = ("customer__user",)


class LeaseSlotInline(ReadOnlyAdminMixin, admin.TabularInline[LeaseSlot, Lease]):
    model = LeaseSlot
    fields = ("node", "slot", "starts_at", "ends_at")
    extra = 0


@admin.register(Lease)
class LeaseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Lease]):
    list_display = ("id", "job", "node", "gpu_count", "state", "price_micros", "starts_at", "ends_at")
    list_filter = ("state",)
    search_fields = ("job__name", "node__name")
    date_hierarchy = "starts_at"
    list_select_related = ("job", "node__gpu_model")
    inlines = [LeaseSlotInline]


@admin.register(LeaseSlot)
class LeaseSlotAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[LeaseSlot]):
    list_display = ("lease", "node", "slot", "starts_at", "ends_at")
    search_fields = ("node__name",)
    list_select_related = ("node__gpu_model",)


@admin.register(MatchRound)
class MatchRoundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[MatchRound]):
    list_display = ("id", "shard", "started_at", "jobs_considered", "nodes_considered", "placed", "total_ms")
    list_filter = ("shard",)
    date_hierarchy = "started_at"


@admin.register(PriceOffer)
class PriceOfferAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[PriceOffer]):
    """Below-ask staff assignments waiting for (or answered by) the provider (issue 12 point 5)."""

    list_display = ("id", "job", "node", "price_micros", "floor_micros", "state", "created_by", "created_at")
    list_filter = ("state",)
    search_fields = ("node__name", "reason")
