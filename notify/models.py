"""Who wants to be told what, where: per-user event choices, webhook endpoints and their delivery log.

notify sits just above common: it knows users and event kinds (plain strings and JSON payloads), never the
apps that raise the events, so every app can call `notify.services.events.notify_event`."""

from django.conf import settings
from django.db import models


class EventKind(models.TextChoices):
    JOB_STATE = "job.state_changed", "Job state changes"
    WALLET_LOW = "wallet.low_balance", "Low wallet balance"
    NODE_OFFLINE = "node.offline", "A node goes offline"
    PAYOUT = "payout.updated", "Payouts"
    FINANCING = "financing.updated", "Financing events"


class NotificationPreference(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notify_preference")
    email_events = models.JSONField(default=list, blank=True, help_text="Event kinds sent by e-mail")
    webhook_events = models.JSONField(default=list, blank=True, help_text="Event kinds sent to the webhooks")


class WebhookEndpoint(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=80, help_text="HMAC-SHA256 key of the X-RigShift-Signature header")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event to one endpoint: sent until a 2xx answers, with back-off, then failed for good."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_key = models.CharField(max_length=120, help_text="The event's own key: one delivery per event")
    kind = models.CharField(max_length=40, choices=EventKind.choices)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_key"], name="webhookdelivery_once_per_event")]
