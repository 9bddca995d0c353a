"""Enqueueing Celery tasks by name, after the current transaction commits: the one mechanism behind every app's
`dispatch` module (`broker/dispatch.py`, `billing/dispatch.py`).

The convention (the same text heads each app's dispatch module):

- Tasks call services; services never import a `tasks` module, eagerly or lazily (tests/common/test_layering.py
  parses every `*/services/` and `*/selectors/` module and fails on one).
- A service that wants background work calls a function of its app's `dispatch` module. That function
  registers `transaction.on_commit`, so the task is sent only once the service's writes are visible to the
  worker (never for a rolled-back transaction), and sends the task BY NAME (`"broker.tasks.match_round"`), so
  the dispatch module never imports the task module either.
- Task modules import services (and may import their app's dispatch module); nothing imports task modules but
  Celery's autodiscovery, the beat schedule (by name) and tests.
- With `CELERY_TASK_ALWAYS_EAGER` (tests, the simulator) the task runs inline in the on-commit callback, as
  the same registered task a worker would run (its module is imported on first use: autodiscovery is lazy
  outside a worker). Tests that need the task to have run wrap the service call in pytest-django's
  `django_capture_on_commit_callbacks(execute=True)`.
- A failure to enqueue is logged, never raised: the caller's transaction has already committed, and every
  dispatched task has a beat entry (or sweep) that catches up.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from celery import current_app
from celery.app.task import Task
from django.db import transaction

log = logging.getLogger(__name__)


def tasks_eager() -> bool:
    """Tasks run inline (tests, the simulator: CELERY_TASK_ALWAYS_EAGER)."""
    return bool(current_app.conf.task_always_eager)


def task_registered(name: str) -> Task:
    """The registered task called `name`, importing its module first when needed."""
    if name not in current_app.tasks:
        importlib.import_module(name.rpartition(".")[0])
    return current_app.tasks[name]


def send_now(name: str, *, args: Sequence[Any] = (), countdown: float | None = None) -> None:
    """Send task `name` now (run it inline when tasks are eager). Callers normally want `send_on_commit`."""
    if tasks_eager():
        task_registered(name).apply_async(args=list(args))
        return
    current_app.send_task(name, args=list(args), countdown=countdown)


def _guarded(name: str, send: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            send()
        except Exception:  # the transaction committed; the task's beat entry or sweep catches up
            log.exception("dispatching %s failed", name)

    return run


def send_on_commit(name: str, *, args: Sequence[Any] = (), countdown: float | None = None) -> None:
    """Send task `name` with `args` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(_guarded(name, lambda: send_now(name, args=args, countdown=countdown)))


def call_on_commit(name: str, send: Callable[[], None]) -> None:
    """Run `send` (which enqueues task `name` its own way, e.g. debounced) once the transaction commits."""
    transaction.on_commit(_guarded(name, send))
