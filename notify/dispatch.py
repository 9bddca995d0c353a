"""Background work notify asks for, by task name after commit (see common/dispatch.py)."""

from __future__ import annotations

from common.dispatch import send_on_commit

DELIVER = "notify.tasks.webhook_deliver"


def webhook_deliver(delivery_id: int) -> None:
    """After commit, try delivery `delivery_id` (the webhooks_retry beat catches up and retries)."""
    send_on_commit(DELIVER, args=[delivery_id])
