"""Broker's background work, enqueued by task name after commit. Services call these; they never import
`broker.tasks`.

Convention (see common/dispatch.py, the mechanism): tasks call services; services never import a `tasks`
module (eagerly or lazily: tests/common/test_layering.py fails on one); a service that wants background work
calls its app's dispatch module, which sends the task BY NAME once the transaction commits
(`transaction.on_commit`), so no task runs against uncommitted rows and a rolled-back transaction sends
nothing. With CELERY_TASK_ALWAYS_EAGER the task runs inline in the on-commit callback (tests wrap the service
call in `django_capture_on_commit_callbacks(execute=True)`). Enqueue failures are logged, never raised: every
task sent here has a beat entry that catches up.
"""

from __future__ import annotations

from django.core.cache import cache

from common.dispatch import call_on_commit, send_now, send_on_commit, tasks_eager

MATCH_ROUND = "broker.tasks.match_round"
NODE_FAILOVER = "broker.tasks.node_failover"
SOON_KEY = "broker:match-round-soon:{shard}"
SOON_COUNTDOWN_S = 0.3


def match_round_soon(shard: str = "default") -> None:
    """After commit, ask for a matching round within about a second (after a booking, a preemption).

    Debounced: requests within the countdown share one round (a cache key marks one as queued until that round
    starts, see `match_round_started`). Eager (tests): the round runs inline, without debounce."""
    call_on_commit(MATCH_ROUND, lambda: match_round_request(shard))


def match_round_request(shard: str = "default") -> None:
    """Send a (debounced) round for `shard` now; `match_round_soon` calls this once the transaction commits."""
    if tasks_eager():
        send_now(MATCH_ROUND, args=[shard])
        return
    if not cache.add(SOON_KEY.format(shard=shard), 1, timeout=5):
        return
    send_now(MATCH_ROUND, args=[shard], countdown=SOON_COUNTDOWN_S)


def match_round_started(shard: str = "default") -> None:
    """A round for `shard` starts: requests from now on ask for another one."""
    cache.delete(SOON_KEY.format(shard=shard))


def node_failover(node_id: int) -> None:
    """After commit, fail the leases of offline node `node_id` over (broker.tasks.node_failover)."""
    send_on_commit(NODE_FAILOVER, args=[node_id])
