"""Common Celery tasks: `ping`, the worker round-trip check used by `manage.py ping_worker`."""

from celery import shared_task
from django.core.cache import cache

PING_KEY = "rigshift:ping:{nonce}"


@shared_task(name="common.tasks.ping", ignore_result=True)
def ping(nonce: str) -> None:
    """Answer a ping: the worker writes the nonce into the shared cache, where the sender looks for it."""
    cache.set(PING_KEY.format(nonce=nonce[:64]), "pong", timeout=300)
