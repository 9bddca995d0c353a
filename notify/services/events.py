"""Telling users: e-mail (Django's mail; the console backend unless SMTP is configured) and signed webhooks.

`notify_event` is called by the app that raises an event, inside its transaction, with a key unique to the
event (a job's timeline step, a payout's id…): the user's chosen channels get it once. Webhook deliveries are
rows (one per endpoint and event key) sent after commit by a Celery task; e-mail goes after commit too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import NotFound, ValidationFailed
from notify import dispatch
from notify.models import DeliveryState, EventKind, NotificationPreference, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BACKOFF_S = (30, 120, 600, 1800, 7200)  # after attempt 1, 2, …; the sixth failure is final
TIMEOUT_S = 10
DEFAULT_EMAIL_EVENTS: list[str] = []  # e-mail is opt-in: the user ticks the events on the notifications page
DEFAULT_WEBHOOK_EVENTS = [k.value for k in EventKind]


def preference_for(*, user: User) -> NotificationPreference:
    pref, _ = NotificationPreference.objects.get_or_create(
        user=user, defaults={"email_events": DEFAULT_EMAIL_EVENTS, "webhook_events": DEFAULT_WEBHOOK_EVENTS}
    )
    return pref


def preference_set(*, user: User, email_events: list[str], webhook_events: list[str]) -> NotificationPreference:
    known = {k.value for k in EventKind}
    unknown = sorted((set(email_events) | set(webhook_events)) - known)
    if unknown:
        raise ValidationFailed(f"Unknown event kind(s): {', '.join(unknown)}.")
    pref = preference_for(user=user)
    pref.email_events, pref.webhook_events = sorted(set(email_events)), sorted(set(webhook_events))
    pref.save(update_fields=["email_events", "webhook_events"])
    return pref


def endpoint_add(*, user: User, url: str) -> WebhookEndpoint:
    if not url.startswith(("https://", "http://")) or len(url) > 500:
        raise ValidationFailed("A webhook URL starts with https:// (or http:// for testing).")
    return WebhookEndpoint.objects.create(user=user, url=url, secret=f"whsec_{secrets.token_urlsafe(24)}")


def endpoint_delete(*, user: User, endpoint_id: int) -> None:
    deleted, _ = WebhookEndpoint.objects.filter(user=user, pk=endpoint_id).delete()
    if not deleted:
        raise NotFound("No such webhook.")


def users_listening(*, user_ids: set[int]) -> set[int]:
    """Those of `user_ids` with a channel at all (an active webhook, or e-mail chosen for some event): two
    queries for a whole batch, so raising events for many jobs costs nothing for users who listen to none."""
    hooks = set(WebhookEndpoint.objects.filter(user_id__in=user_ids, active=True).values_list("user_id", flat=True))
    mail = set(
        NotificationPreference.objects.filter(user_id__in=user_ids)
        .exclude(email_events=[])
        .values_list("user_id", flat=True)
    )
    return hooks | mail


def notify_event(*, user: User, kind: str, key: str, subject: str, payload: dict[str, Any]) -> None:
    """Tell `user` about event `kind` (once per `key`) on the channels it chose."""
    pref = NotificationPreference.objects.filter(user=user).first() or NotificationPreference(
        user=user, email_events=DEFAULT_EMAIL_EVENTS, webhook_events=DEFAULT_WEBHOOK_EVENTS
    )
    if kind in pref.webhook_events:
        body = {"kind": kind, "key": key, "at": timezone.now().isoformat(), "data": payload}
        for endpoint in WebhookEndpoint.objects.filter(user=user, active=True):
            try:
                with transaction.atomic():
                    delivery = WebhookDelivery.objects.create(
                        endpoint=endpoint, event_key=key[:120], kind=kind, payload=body, next_attempt_at=timezone.now()
                    )
            except IntegrityError:
                continue  # this event was already queued for this endpoint
            dispatch.webhook_deliver(delivery.pk)
    if kind in pref.email_events and user.email:
        text = f"{subject}\n\n" + "\n".join(f"{k}: {v}" for k, v in payload.items())
        transaction.on_commit(lambda: _mail(subject=subject, text=text, to=user.email))


def _mail(*, subject: str, text: str, to: str) -> None:
    try:
        send_mail(f"[RigShift] {subject}", text, settings.DEFAULT_FROM_EMAIL, [to])
    except Exception:  # a mail server down must not break the caller; the webhook log is the record
        log.exception("e-mail to %s failed", to)


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint's secret>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_deliver(*, delivery_id: int, now: datetime | None = None) -> str:
    """Try one pending delivery whose time has come; returns its state. A 2xx delivers it; anything else
    counts an attempt and schedules the next with back-off, or fails it after MAX_ATTEMPTS."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("endpoint")
            .filter(pk=delivery_id, state=DeliveryState.PENDING)
            .first()
        )
        if delivery is None or (delivery.next_attempt_at and delivery.next_attempt_at > now):
            return delivery.state if delivery else "gone"
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=BACKOFF_S[min(delivery.attempts, len(BACKOFF_S)) - 1])
        delivery.save(update_fields=["attempts", "next_attempt_at"])
    body = json.dumps(delivery.payload, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "RigShift-Webhooks/1",
        "X-RigShift-Event": delivery.kind,
        "X-RigShift-Delivery": str(delivery.pk),
        "X-RigShift-Signature": signature(secret=delivery.endpoint.secret, timestamp=int(time.time()), body=body),
    }
    status, error = None, ""
    try:
        response = requests.post(delivery.endpoint.url, data=body, headers=headers, timeout=TIMEOUT_S)
        status = response.status_code
    except requests.RequestException as exc:
        error = str(exc)[:300]
    fields: dict[str, Any] = {"last_status": status, "last_error": error}
    if status is not None and 200 <= status < 300:
        fields |= {"state": DeliveryState.DELIVERED, "delivered_at": timezone.now(), "next_attempt_at": None}
    else:
        fields["last_error"] = error or f"HTTP {status}"
        if delivery.attempts >= MAX_ATTEMPTS:
            fields |= {"state": DeliveryState.FAILED, "next_attempt_at": None}
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return str(fields.get("state", DeliveryState.PENDING))


def webhooks_retry_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Retry the pending deliveries whose next attempt is due (the beat task). Returns how many were tried."""
    now = now or timezone.now()
    ids = list(
        WebhookDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in ids:
        webhook_deliver(delivery_id=delivery_id, now=now)
    return len(ids)
