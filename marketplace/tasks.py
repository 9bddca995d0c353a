"""Marketplace Celery tasks: thin wrappers that call one service each."""

from celery import shared_task

from marketplace.services.challenge import challenges_expire as challenges_expire_service
from marketplace.services.reliability import node_heartbeats_prune as node_heartbeats_prune_service
from marketplace.services.reliability import nodes_mark_offline as nodes_mark_offline_service
from marketplace.services.reliability import nodes_reliability_refresh as nodes_reliability_refresh_service


@shared_task(name="marketplace.tasks.nodes_mark_offline", ignore_result=True)
def nodes_mark_offline() -> int:
    """Beat (every 15 s): mark nodes whose heartbeats stopped offline; sends `node_went_offline` on commit."""
    return len(nodes_mark_offline_service())


@shared_task(name="marketplace.tasks.nodes_reliability_refresh", ignore_result=True)
def nodes_reliability_refresh() -> int:
    """Beat (every 5 min): recompute every node's rolling 30-day reliability."""
    return nodes_reliability_refresh_service()


@shared_task(name="marketplace.tasks.node_heartbeats_prune", ignore_result=True)
def node_heartbeats_prune() -> int:
    """Beat (hourly): delete heartbeat rows past their retention."""
    return node_heartbeats_prune_service()


@shared_task(name="marketplace.tasks.challenges_expire", ignore_result=True)
def challenges_expire() -> int:
    """Beat (every minute): fail compute challenges not answered (or not revealed) in time."""
    return challenges_expire_service()
