"""Reads of compute challenges: is one waiting for the agent, and the figures staff and providers see."""

from dataclasses import dataclass

from marketplace.models import ChallengeState, Node, NodeChallenge
from marketplace.services.challenge import FAST_FACTOR, SLOW_FACTOR, challenge_spec, peak_tflops


def node_challenge_pending(*, node_id: int) -> bool:
    """A challenge waits for the agent to fetch it (or to fetch it again after a restart)."""
    waiting = (ChallengeState.PENDING, ChallengeState.DELIVERED)
    return NodeChallenge.objects.filter(node_id=node_id, state__in=waiting).exists()


@dataclass(frozen=True)
class ChallengeFigures:
    challenge: NodeChallenge
    work_tflop: float  # per GPU
    claimed_s: float | None
    observed_s: float | None
    measured_tflops: float | None
    slowest_tflops: float  # what every working card of the model reaches
    fastest_tflops: float  # what no card of the model exceeds
    verdict: str


def challenge_figures(challenge: NodeChallenge) -> ChallengeFigures:
    peak = peak_tflops(challenge.gpu_model)
    return ChallengeFigures(
        challenge=challenge,
        work_tflop=challenge_spec(challenge).flops_per_gpu / 1e12,
        claimed_s=challenge.claimed_s,
        observed_s=challenge.observed_s,
        measured_tflops=challenge.measured_tflops,
        slowest_tflops=SLOW_FACTOR * peak,
        fastest_tflops=FAST_FACTOR * peak,
        verdict=challenge.verdict,
    )


def node_challenges(*, node: Node, limit: int = 5) -> list[ChallengeFigures]:
    """The node's latest challenges, newest first, with their figures."""
    rows = NodeChallenge.objects.filter(node=node).select_related("gpu_model", "requested_by")[:limit]
    return [challenge_figures(challenge) for challenge in rows]
