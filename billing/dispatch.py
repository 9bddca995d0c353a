"""Billing's background work, enqueued by task name after commit. Services call these; they never import
`billing.tasks`.

Convention (see common/dispatch.py, the mechanism): tasks call services; services never import a `tasks`
module (eagerly or lazily: tests/common/test_layering.py fails on one); a service that wants background work
calls its app's dispatch module, which sends the task BY NAME once the transaction commits
(`transaction.on_commit`), so no task runs against uncommitted rows and a rolled-back transaction sends
nothing. With CELERY_TASK_ALWAYS_EAGER the task runs inline in the on-commit callback (tests wrap the service
call in `django_capture_on_commit_callbacks(execute=True)`). Enqueue failures are logged, never raised: every
task sent here has a beat entry that catches up.
"""

from __future__ import annotations

from common.dispatch import send_on_commit

SETTLE_LEASE = "billing.tasks.settle_lease"


def settle_lease(lease_ref: int) -> None:
    """After commit, settle the pending usage of lease `lease_ref` (the settle_usage beat catches up)."""
    send_on_commit(SETTLE_LEASE, args=[lease_ref])
