"""Broker Celery tasks: thin wrappers that call one service each. Tasks take ids and are idempotent.
Services enqueue them by name through broker.dispatch and never import this module."""

from __future__ import annotations

from celery import shared_task

from broker.dispatch import match_round_started
from broker.services.challenges import nodes_challenge_idle
from broker.services.failover import node_failover as node_failover_service
from broker.services.failover import nodes_failover_sweep
from broker.services.leases import leases_expire as leases_expire_service
from broker.services.matching import match_round_run


@shared_task(name="broker.tasks.match_round", acks_late=True, ignore_result=True)
def match_round(shard: str = "default") -> int | None:
    """Run one matching round for `shard` (idempotent; skipped while another matcher holds the lock)."""
    match_round_started(shard)  # bookings from now on ask for another round
    # Wait briefly for a running round (a booking that just missed its snapshot gets its own round soon);
    # longer waits would only pile up workers behind the lock — the beat runs a round every few seconds.
    rnd = match_round_run(shard=shard, wait_s=2.0)
    return rnd.pk


@shared_task(name="broker.tasks.leases_expire", acks_late=True, ignore_result=True)
def leases_expire() -> int:
    """Beat: leases past their end → ended (jobs completed, unused escrow released)."""
    return leases_expire_service()


@shared_task(name="broker.tasks.node_failover", acks_late=True, ignore_result=True)
def node_failover(node_id: int) -> int:
    """Fail the leases of an offline node over (idempotent: a lease fails once)."""
    return node_failover_service(node_id=node_id)


@shared_task(name="broker.tasks.failover_sweep", acks_late=True, ignore_result=True)
def failover_sweep() -> int:
    """Beat: fail over leases still held on offline nodes (a lost node_failover task must not strand them)."""
    return nodes_failover_sweep()


@shared_task(name="broker.tasks.challenges_idle", ignore_result=True)
def challenges_idle() -> int:
    """Beat (every 10 min): compute challenges for idle online nodes, at random times."""
    return len(nodes_challenge_idle())
