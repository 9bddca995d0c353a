"""Celery tasks of notify: thin, over notify.services.events."""

from celery import shared_task

from notify.services.events import webhook_deliver as deliver
from notify.services.events import webhooks_retry_due


@shared_task(name="notify.tasks.webhook_deliver")
def webhook_deliver(delivery_id: int) -> str:
    return deliver(delivery_id=delivery_id)


@shared_task(name="notify.tasks.webhooks_retry")
def webhooks_retry() -> int:
    return webhooks_retry_due()
