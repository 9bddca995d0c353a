"""Compute challenges at random times while a node is idle (the broker knows the leases; the challenge itself is
marketplace/services/challenge.py)."""

import random
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from broker.models import Lease
from broker.selectors.offers import HOLDING_LEASE_STATES
from marketplace.models import ChallengeReason, Node, NodeStatus
from marketplace.services.challenge import OPEN_STATES, node_challenge_issue

BEAT_INTERVAL_S = 600.0


def nodes_challenge_idle(
    *, now: datetime | None = None, probability: float | None = None, rng: random.Random | None = None
) -> list[int]:
    """Issue a challenge to each online node that holds no lease now and has none open, with `probability`
    (default: RIGSHIFT_CHALLENGE_IDLE_PER_DAY spread over the day's beat rounds). Returns the node ids."""
    now = now or timezone.now()
    if probability is None:
        probability = float(settings.RIGSHIFT_CHALLENGE_IDLE_PER_DAY) * BEAT_INTERVAL_S / 86_400
    rng = rng or random.SystemRandom()
    busy = Lease.objects.filter(state__in=HOLDING_LEASE_STATES, starts_at__lte=now, ends_at__gt=now).values("node_id")
    idle = (
        Node.objects.filter(status=NodeStatus.ONLINE)
        .exclude(pk__in=busy)
        .exclude(challenges__state__in=OPEN_STATES)
        .select_related("gpu_model")
        .order_by("pk")
    )
    issued = []
    for node in idle:
        if rng.random() < probability:
            _challenge, created = node_challenge_issue(node=node, reason=ChallengeReason.IDLE)
            if created:
                issued.append(node.pk)
    return issued
