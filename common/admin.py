from django.contrib import admin

from common.models import ApiToken, AuditLog


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    search_fields = ("prefix", "user__username")


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin[AuditLog]):
    list_display = ("created_at", "actor", "action", "target")
    list_filter = ("action",)
    readonly_fields = ("actor", "action", "target", "details", "created_at")
