"""The compute challenge: a correct answer passes and sets dlperf; a wrong digest, wrong rows, an answer faster
than the claimed card, or a CPU doing a GPU's work fails, takes verification away and keeps the node out of
matching and offers until a challenge passes."""

import base64
import random
from datetime import timedelta
from typing import Any, cast

import pytest
from django.utils import timezone

from broker.models import LeaseState
from broker.selectors.offers import offer_search
from broker.services.challenges import nodes_challenge_idle
from broker.services.matching import snapshot_take
from common.errors import Conflict
from common.models import AuditLog
from marketplace.models import ChallengeReason, ChallengeState, GPUModel, Node, NodeChallenge
from marketplace.services.challenge import (
    ALLOWANCE_S,
    PRESETS,
    challenge_params,
    challenges_expire,
    node_challenge_deliver,
    node_challenge_issue,
    peak_tflops,
)
from marketplace.services.verification import node_agent_report_apply, node_verify
from tests.broker.test_agent_api import make_lease
from tests.challenge_helpers import answer_challenge, pass_challenge
from tests.factories import NodeFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def node() -> Node:
    model = GPUModel.objects.get(slug="rtx-4090")
    return cast(Node, NodeFactory(gpu_model=model, gpu_count=2, verified=True, agent_registered_at=timezone.now()))


def test_correct_answer_passes_and_sets_dlperf_from_the_bounded_time(node: Node) -> None:
    challenge = pass_challenge(node, speed=0.8)
    expected = 0.8 * peak_tflops(node.gpu_model)
    assert challenge.measured_tflops == pytest.approx(expected, rel=1e-3)
    assert node.dlperf == round(expected, 1)
    assert node.challenge_verdict == ChallengeState.PASSED and node.verified
    assert len(challenge.picks) == 6 and challenge.digest and challenge.verdict == ""


def test_wrong_digest_fails(node: Node) -> None:
    challenge = answer_challenge(node, digest=lambda d: ("0" if d[0] != "0" else "1") + d[1:])
    assert challenge.state == ChallengeState.FAILED
    assert "digest does not match" in challenge.verdict


def _flip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    first = dict(rows[0])
    raw = bytearray(base64.b64decode(first["values"]))
    raw[0] = 0 if raw[0] else 1  # one entry of the result row changed
    first["values"] = base64.b64encode(bytes(raw)).decode()
    return [first, *rows[1:]]


def test_wrong_rows_fail(node: Node) -> None:
    challenge = answer_challenge(node, reveal=_flip)
    assert challenge.state == ChallengeState.FAILED
    assert "wrong result" in challenge.verdict and "differ from the server's" in challenge.verdict


def test_rows_left_out_fail(node: Node) -> None:
    challenge = answer_challenge(node, reveal=lambda rows: rows[:2])
    assert challenge.state == ChallengeState.FAILED and "not revealed" in challenge.verdict


def test_answer_faster_than_the_claimed_card_fails(node: Node) -> None:
    challenge = answer_challenge(node, speed=3.0)  # three times an RTX 4090's peak
    assert challenge.state == ChallengeState.FAILED
    assert challenge.verdict.startswith("too fast") and "GeForce RTX 4090" in challenge.verdict
    node.refresh_from_db()
    assert node.dlperf is None and node.challenge_verdict == ChallengeState.FAILED


def test_cpu_only_agent_claiming_a_gpu_fails_on_time() -> None:
    h100 = NodeFactory(gpu_model=GPUModel.objects.get(slug="h100-sxm"), gpu_count=1)
    challenge = answer_challenge(h100, speed=None)  # the agent really computes, with numpy on this CPU
    assert challenge.backend == "numpy"
    assert challenge.state == ChallengeState.FAILED
    assert challenge.verdict.startswith("too slow") and "H100 SXM" in challenge.verdict
    assert challenge.measured_tflops is not None and challenge.measured_tflops < 0.1 * peak_tflops(h100.gpu_model)


def test_a_small_claimed_time_is_bounded_by_the_servers_clock(node: Node) -> None:
    """A CPU that computes for ten minutes and claims a GPU's time is judged by what the server observed."""
    start = timezone.now()
    late = answer_challenge(node, delivered_at=start, answered_at=start + timedelta(seconds=600))
    assert late.state == ChallengeState.FAILED and late.verdict.startswith("too slow")
    assert late.observed_s == 600.0
    assert late.measured_tflops == pytest.approx(late.params["rounds"] * 2 * 128 * 64 * 64 / (600 - ALLOWANCE_S) / 1e12)


def test_claiming_more_compute_time_than_the_server_waited_fails(node: Node) -> None:
    start = timezone.now()
    challenge = answer_challenge(node, delivered_at=start, answered_at=start + timedelta(seconds=2), claimed_s=30)
    assert challenge.state == ChallengeState.FAILED and "claims 30.000 s of compute" in challenge.verdict


def test_failure_takes_verification_away_and_the_node_out_of_matching_until_it_passes(node: Node) -> None:
    assert node.pk in snapshot_take(now=timezone.now()).nodes.ids
    answer_challenge(node, speed=3.0)
    node.refresh_from_db()
    assert node.verified is False
    assert AuditLog.objects.filter(action="node.deverify", target=f"node:{node.pk}").exists()
    assert node.pk not in snapshot_take(now=timezone.now()).nodes.ids
    assert node.pk not in [o.node_id for o in offer_search()]
    with pytest.raises(Conflict) as refused:
        node_verify(node=node, by=UserFactory(is_staff=True))
    assert refused.value.code == "challenge_not_passed"
    pass_challenge(node)
    assert node.pk in snapshot_take(now=timezone.now()).nodes.ids
    assert node.pk in [o.node_id for o in offer_search()]
    node_verify(node=node, by=UserFactory(is_staff=True))


def test_search_ranks_by_challenge_measured_dlperf() -> None:
    model = GPUModel.objects.get(slug="rtx-4090")
    slow, fast, none = (NodeFactory(gpu_model=model, name=n) for n in ("slow", "fast", "unmeasured"))
    # the agents' own benchmark figures say the opposite: they are never taken
    node_agent_report_apply(node=slow, report={"gpus": [], "benchmark": {"tflops": 900.0}})
    node_agent_report_apply(node=fast, report={"gpus": [], "benchmark": {"tflops": 10.0}})
    pass_challenge(slow, speed=0.5)
    pass_challenge(fast, speed=0.9)
    order = [o.node_id for o in offer_search(order="-dlperf")]
    assert order.index(fast.pk) < order.index(slow.pk) < order.index(none.pk)
    assert [o.dlperf for o in offer_search(q="dlperf>=100")] == [round(0.9 * 165.2, 1)]


def test_registration_issues_one_challenge_and_reissue_returns_the_open_one(node: Node) -> None:
    node_agent_report_apply(node=node, report={"gpus": []})
    node_agent_report_apply(node=node, report={"gpus": []})  # the agent restarted: still one challenge
    assert NodeChallenge.objects.filter(node=node, reason=ChallengeReason.REGISTRATION).count() == 1
    challenge, created = node_challenge_issue(node=node, reason=ChallengeReason.STAFF)
    assert not created and challenge.reason == ChallengeReason.REGISTRATION


def test_unanswered_challenge_expires_as_failed(node: Node) -> None:
    node_challenge_issue(node=node)
    start = timezone.now()
    challenge = node_challenge_deliver(node=node, now=start)
    assert challenge is not None
    deadline = challenge.params["deadline_s"] + ALLOWANCE_S
    assert challenges_expire(now=start + timedelta(seconds=deadline - 1)) == 0
    assert challenges_expire(now=start + timedelta(seconds=deadline + 1)) == 1
    challenge.refresh_from_db()
    assert challenge.state == ChallengeState.FAILED and "no answer" in challenge.verdict


def test_full_size_needs_most_of_the_claimed_vram_and_seconds_of_a_card() -> None:
    for slug in ("rtx-4090", "h100-sxm", "rtx-3060", "mi300x"):
        model = GPUModel.objects.get(slug=slug)
        params = challenge_params(gpu_model=model, gpu_count=8, preset=PRESETS["full"])
        vram = params["items"] * (2 * params["m"] * params["k"] + params["k"] ** 2) * 2
        assert 0.70 * float(model.vram_gb) * 1e9 < vram <= 0.75 * float(model.vram_gb) * 1e9
        work = params["rounds"] * params["items"] * 2 * params["m"] * params["k"] ** 2
        assert work / (peak_tflops(model) * 1e12) >= 5  # at the datasheet peak, still seconds of work
        assert params["k"] <= 2048  # every sum stays exact in FP16


def test_idle_beat_challenges_idle_online_nodes_only(node: Node) -> None:
    busy = NodeFactory(gpu_model=node.gpu_model)
    make_lease(busy, state=LeaseState.ACTIVE)
    issued = nodes_challenge_idle(probability=1.0, rng=random.Random(1))
    assert node.pk in issued and busy.pk not in issued
    assert nodes_challenge_idle(probability=1.0) == []  # open challenges are not doubled
