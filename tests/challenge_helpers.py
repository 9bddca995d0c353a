"""Answer a node's compute challenge through the services, as an agent would (simulated speed by default)."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rigshift_agent.challenge import Solution, solve

from marketplace.models import ChallengeReason, Node, NodeChallenge
from marketplace.services.challenge import (
    challenge_spec,
    node_challenge_commit,
    node_challenge_deliver,
    node_challenge_issue,
    node_challenge_reveal,
    peak_tflops,
)


def answer_challenge(
    node: Node,
    *,
    speed: float | None = 0.8,  # share of the model's peak the simulated agent reports; None: really time numpy
    digest: Callable[[str], str] = lambda d: d,
    reveal: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda rows: rows,
    delivered_at: datetime | None = None,
    answered_at: datetime | None = None,
    claimed_s: float | None = None,
) -> NodeChallenge:
    node_challenge_issue(node=node, reason=ChallengeReason.STAFF)
    challenge = node_challenge_deliver(node=node, now=delivered_at)
    assert challenge is not None
    spec = challenge_spec(challenge)
    tflops = speed * peak_tflops(challenge.gpu_model) if speed is not None else None
    solution: Solution = solve(spec, simulated_tflops=tflops)
    committed = node_challenge_commit(
        node=node,
        challenge_id=challenge.pk,
        digest=digest(solution.digest),
        compute_s=solution.compute_s if claimed_s is None else claimed_s,
        backend=solution.backend,
        now=answered_at,
    )
    if committed.state != "answered":
        return committed
    return node_challenge_reveal(
        node=node, challenge_id=challenge.pk, rows=reveal(solution.reveal(spec, committed.picks))
    )


def pass_challenge(node: Node, *, speed: float = 0.8) -> NodeChallenge:
    challenge = answer_challenge(node, speed=speed)
    assert challenge.state == "passed", challenge.verdict
    node.refresh_from_db()
    return challenge
