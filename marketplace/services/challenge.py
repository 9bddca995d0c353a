"""The compute challenge: the broker checks the hardware itself (the work is defined in rigshift_agent/challenge.py).

Flow: `node_challenge_issue` (at agent registration, at random times while idle, on staff request) → the agent
fetches it (`node_challenge_deliver`: the server's clock starts) → the agent commits to its result
(`node_challenge_commit`: the clock stops; the time is judged; the server draws the rows to see) → the agent
reveals those rows (`node_challenge_reveal`: the server recomputes them on its CPU).

Time, per GPU (the GPUs work side by side): work W FLOP; the agent claims c seconds, the server observed o.
The time judged is t = max(c, o − ALLOWANCE_S): the claim may not be faster than the server's own clock allows
(less an allowance for the network and the generation of the matrices). W / t above FAST_FACTOR × the model's
peak is faster than any card of that model (a precomputed or forged answer, or another card); below
SLOW_FACTOR × peak is slower than any working card of it (a CPU-only agent claiming a GPU). A pass sets the
node's `dlperf` to W / t, the only source of that figure; a failure takes verification away and keeps the node
out of matching until a later challenge passes.
"""

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rigshift_agent.challenge import K_MAX, ChallengeSpec, row_verdict

from common.errors import Conflict, NotFound, ValidationFailed
from common.services import audit_log
from marketplace.models import ChallengeReason, ChallengeState, GPUModel, Node, NodeChallenge

FAST_FACTOR = 1.25
SLOW_FACTOR = 0.10
ALLOWANCE_S = 5.0
CLOCK_SLACK_S = 1.0
ROWS_CHECKED = 6
REVEAL_WITHIN_S = 300
OPEN_STATES = (ChallengeState.PENDING, ChallengeState.DELIVERED, ChallengeState.ANSWERED)


@dataclass(frozen=True)
class Preset:
    m: int
    k: int
    vram_fill: float  # share of the claimed VRAM the batch fills
    target_s: float  # seconds of work at the model's peak
    max_rounds: int
    max_items: int


# "full" needs most of the claimed VRAM and ~20 s of a card of the model; "small" (DEBUG: demo, simulator,
# tests) is answered by a CPU in milliseconds.
PRESETS = {
    "full": Preset(m=4096, k=K_MAX, vram_fill=0.75, target_s=20.0, max_rounds=256, max_items=4096),
    "small": Preset(m=128, k=64, vram_fill=0.0, target_s=1.0, max_rounds=8, max_items=2),
}


def _preset() -> Preset:
    return PRESETS[getattr(settings, "RIGSHIFT_CHALLENGE_SIZE", "full")]


def peak_tflops(gpu_model: GPUModel) -> float:
    """The model's fastest path for an FP16 matrix multiply: tensor cores, or FP32 where FP16 is crippled."""
    return max(float(gpu_model.fp16_tflops), float(gpu_model.fp32_tflops), 0.01)


def challenge_params(*, gpu_model: GPUModel, gpu_count: int, preset: Preset | None = None) -> dict[str, Any]:
    """Sizes for a node of `gpu_count` × `gpu_model`: a batch filling most of one card's VRAM, enough rounds."""
    p = preset or _preset()
    item_bytes = (2 * p.m * p.k + p.k * p.k) * 2
    items = int(min(p.max_items, max(1, p.vram_fill * float(gpu_model.vram_gb) * 1e9 // item_bytes)))
    peak = peak_tflops(gpu_model) * 1e12
    rounds = min(p.max_rounds, max(1, math.ceil(p.target_s * peak / (items * 2.0 * p.m * p.k * p.k))))
    work = rounds * items * 2.0 * p.m * p.k * p.k
    deadline = work / (SLOW_FACTOR * peak) + ALLOWANCE_S
    return {"gpus": gpu_count, "items": items, "m": p.m, "k": p.k, "rounds": rounds, "deadline_s": round(deadline, 3)}


def challenge_spec(challenge: NodeChallenge) -> ChallengeSpec:
    return ChallengeSpec.from_json({"challenge_id": challenge.pk, "seed": challenge.seed, **challenge.params})


def node_challenge_issue(
    *, node: Node, reason: str = ChallengeReason.REGISTRATION, by: Any = None
) -> tuple[NodeChallenge, bool]:
    """A fresh challenge for `node` (a new seed), or the one still open. Returns (challenge, created)."""
    with transaction.atomic():
        Node.objects.select_for_update().filter(pk=node.pk).first()
        open_one = NodeChallenge.objects.filter(node=node, state__in=OPEN_STATES).first()
        if open_one is not None:
            return open_one, False
        challenge = NodeChallenge.objects.create(
            node=node,
            reason=reason,
            requested_by=by if getattr(by, "is_authenticated", False) else None,
            seed=secrets.token_hex(16),
            params=challenge_params(gpu_model=node.gpu_model, gpu_count=node.gpu_count),
            gpu_model=node.gpu_model,
        )
    return challenge, True


def node_challenge_deliver(*, node: Node, now: datetime | None = None) -> NodeChallenge | None:
    """The node's open challenge for its agent; the first delivery starts the clock (a re-fetch does not)."""
    now = now or timezone.now()
    with transaction.atomic():
        challenge = (
            NodeChallenge.objects.select_for_update()
            .filter(node=node, state__in=(ChallengeState.PENDING, ChallengeState.DELIVERED))
            .order_by("created_at", "id")
            .first()
        )
        if challenge is not None and challenge.state == ChallengeState.PENDING:
            challenge.state, challenge.delivered_at = ChallengeState.DELIVERED, now
            challenge.save(update_fields=["state", "delivered_at"])
    return challenge


def _own(*, node: Node, challenge_id: int, state: str) -> NodeChallenge:
    challenge = NodeChallenge.objects.select_for_update().filter(pk=challenge_id, node=node).first()
    if challenge is None:
        raise NotFound(f"Node {node.pk} has no challenge {challenge_id}.", code="challenge_not_found")
    if challenge.state != state:
        raise Conflict(
            f"Challenge {challenge_id} is {challenge.get_state_display().lower()}, not "
            f"{ChallengeState(state).label.lower()}.",
            code="challenge_state",
        )
    return challenge


def time_verdict(*, challenge: NodeChallenge, claimed_s: float, observed_s: float) -> tuple[float, str]:
    """(TFLOPS per GPU the time supports, '' or why the time fails) — see the module docstring."""
    spec, model = challenge_spec(challenge), challenge.gpu_model
    peak = peak_tflops(model)
    if claimed_s > observed_s + CLOCK_SLACK_S:
        return 0.0, (
            f"the agent claims {claimed_s:.3f} s of compute but answered {observed_s:.3f} s after the seed was sent"
        )
    seconds = max(claimed_s, observed_s - ALLOWANCE_S, 1e-9)
    tflops = spec.flops_per_gpu / seconds / 1e12
    figures = (
        f"{spec.flops_per_gpu / 1e12:.4g} TFLOP per GPU in {seconds:.4g} s (claimed {claimed_s:.4g} s, "
        f"observed {observed_s:.4g} s) is {tflops:.4g} TFLOPS"
    )
    if tflops > FAST_FACTOR * peak:
        return tflops, f"too fast: {figures}; no {model.name} exceeds {FAST_FACTOR * peak:.4g} TFLOPS"
    if tflops < SLOW_FACTOR * peak:
        return tflops, f"too slow: {figures}; every working {model.name} reaches {SLOW_FACTOR * peak:.4g} TFLOPS"
    return tflops, ""


def node_challenge_commit(
    *,
    node: Node,
    challenge_id: int,
    digest: str,
    compute_s: float,
    backend: str = "",
    gave_up: bool = False,
    now: datetime | None = None,
) -> NodeChallenge:
    """The agent's commitment: stops the clock, judges the time, draws the rows to see (`picks`)."""
    now = now or timezone.now()
    if not gave_up and (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)):
        raise ValidationFailed("digest must be 64 lower-case hex characters (a SHA-256).", code="invalid")
    with transaction.atomic():
        challenge = _own(node=node, challenge_id=challenge_id, state=ChallengeState.DELIVERED)
        assert challenge.delivered_at is not None
        observed = max(0.0, (now - challenge.delivered_at).total_seconds())
        challenge.answered_at, challenge.digest, challenge.backend = now, digest, backend[:60]
        challenge.claimed_s, challenge.observed_s = compute_s, observed
        tflops, verdict = time_verdict(challenge=challenge, claimed_s=compute_s, observed_s=observed)
        if gave_up:
            verdict = (
                f"the agent gave up after {compute_s:.4g} s, past the {challenge.params['deadline_s']:g} s deadline"
            )
        challenge.measured_tflops = tflops
        spec = challenge_spec(challenge)
        rng = secrets.SystemRandom()
        items = [(rng.randrange(spec.gpus), rng.randrange(spec.items)) for _ in range(2)]
        challenge.picks = [[*items[n % 2], rng.randrange(spec.m)] for n in range(ROWS_CHECKED)]
        challenge.state = ChallengeState.ANSWERED
        challenge.save()
        if verdict:
            _finish(challenge=challenge, verdict=verdict, now=now)
    return challenge


def node_challenge_reveal(
    *, node: Node, challenge_id: int, rows: list[dict[str, Any]], now: datetime | None = None
) -> NodeChallenge:
    """Check the revealed rows against the server's own computation and the committed digest; pass or fail."""
    now = now or timezone.now()
    with transaction.atomic():
        challenge = _own(node=node, challenge_id=challenge_id, state=ChallengeState.ANSWERED)
        by_pick = {(int(r["gpu"]), int(r["item"]), int(r["row"])): r for r in rows}
        spec = challenge_spec(challenge)
        problems = []
        for gpu, item, row in challenge.picks:
            reveal = by_pick.get((gpu, item, row))
            if reveal is None:
                problems.append(f"GPU {gpu}, item {item}, row {row}: not revealed")
                continue
            problem = row_verdict(spec, digest=challenge.digest, reveal=reveal)
            if problem:
                problems.append(problem)
        verdict = f"wrong answer: {problems[0]}" if problems else ""
        if len(problems) > 1:
            verdict += f" (and {len(problems) - 1} more of {len(challenge.picks)} rows)"
        _finish(challenge=challenge, verdict=verdict, now=now)
    return challenge


def _finish(*, challenge: NodeChallenge, verdict: str, now: datetime) -> None:
    """Record the verdict on the challenge and the node (inside the caller's transaction)."""
    passed = not verdict
    challenge.state = ChallengeState.PASSED if passed else ChallengeState.FAILED
    challenge.verdict, challenge.finished_at = verdict[:500], now
    challenge.save(update_fields=["state", "verdict", "finished_at"])
    node = Node.objects.select_for_update().get(pk=challenge.node_id)
    fields: dict[str, Any] = {"challenge_verdict": challenge.state, "updated_at": now}
    if passed and challenge.measured_tflops is not None:
        fields["dlperf"] = round(challenge.measured_tflops, 1)
    if not passed and node.verified:
        fields["verified"] = False
        audit_log(
            actor=None,
            action="node.deverify",
            target=f"node:{node.pk}",
            details={"reason": "compute challenge failed", "challenge": challenge.pk, "verdict": verdict[:500]},
        )
    Node.objects.filter(pk=node.pk).update(**fields)


def challenges_expire(*, now: datetime | None = None) -> int:
    """Fail challenges the agent did not answer by their deadline, or whose rows it did not reveal in time."""
    now = now or timezone.now()
    failed = 0
    late = NodeChallenge.objects.filter(state__in=(ChallengeState.DELIVERED, ChallengeState.ANSWERED))
    for challenge_id in late.values_list("pk", flat=True):
        with transaction.atomic():
            challenge = NodeChallenge.objects.select_for_update().get(pk=challenge_id)
            if challenge.state == ChallengeState.DELIVERED and challenge.delivered_at is not None:
                limit = timedelta(seconds=float(challenge.params["deadline_s"]) + ALLOWANCE_S)
                if now - challenge.delivered_at > limit:
                    _finish(challenge=challenge, verdict=f"no answer within {limit.total_seconds():g} s", now=now)
                    failed += 1
            elif (
                challenge.state == ChallengeState.ANSWERED
                and challenge.answered_at is not None
                and now - challenge.answered_at > timedelta(seconds=REVEAL_WITHIN_S)
            ):
                _finish(challenge=challenge, verdict=f"rows not revealed within {REVEAL_WITHIN_S} s", now=now)
                failed += 1
    return failed
