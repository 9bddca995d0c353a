"""The compute challenge end to end: the real agent Runner (simulate mode, and a CPU-only agent) against the
agent API in process; the console button; the figures on the console and provider node pages."""

from typing import Any, cast

import pytest
import requests
from django.test import Client
from django.urls import reverse
from rigshift_agent.detect import simulate, simulated_challenge_tflops
from rigshift_agent.executor import SimulatedExecutor
from rigshift_agent.runner import Runner
from rigshift_agent.state import MemoryStore
from rigshift_client import ApiClient

from marketplace.models import ChallengeReason, ChallengeState, GPUModel, NodeChallenge
from simulator.agents import SERVER, InProcessSession
from tests.broker.test_agent_api import agent_client, agent_node
from tests.challenge_helpers import answer_challenge
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def runner(raw: str, profile: str, *, simulated: bool = True) -> Runner:
    session = InProcessSession()
    return Runner(
        client=ApiClient(server=SERVER, token=raw, session=cast(requests.Session, session)),
        hardware=simulate(profile),
        store=MemoryStore(),
        executor=SimulatedExecutor(clock=lambda: 0.0),
        clock=lambda: 1_800_000_000.0,
        interval=15.0,
        simulated_tflops=simulated_challenge_tflops(profile) if simulated else None,
    )


def test_simulated_agent_passes_its_registration_challenge_through_the_api() -> None:
    node, raw = agent_node(gpu_model=GPUModel.objects.get(slug="l40s"), gpu_count=4)
    agent = runner(raw, "4xL40S")
    body = agent.register()
    assert body["challenge_pending"] is True
    assert agent.last_challenge["state"] == ChallengeState.PASSED
    node.refresh_from_db()
    assert node.challenge_verdict == ChallengeState.PASSED
    assert node.dlperf == round(simulated_challenge_tflops("4xL40S"), 1)
    challenge = NodeChallenge.objects.get(node=node)
    assert (challenge.reason, challenge.params["gpus"]) == (ChallengeReason.REGISTRATION, 4)
    assert agent.heartbeat()["challenge_pending"] is False


def test_cpu_only_agent_claiming_gpus_fails_through_the_api() -> None:
    node, raw = agent_node(gpu_model=GPUModel.objects.get(slug="h100-sxm"), gpu_count=2)
    agent = runner(raw, "2xH100-SXM", simulated=False)  # says H100s, computes with numpy on the CPU
    agent.register()
    assert agent.last_challenge["state"] == ChallengeState.FAILED
    assert agent.last_challenge["verdict"].startswith("too slow")
    node.refresh_from_db()
    assert node.challenge_verdict == ChallengeState.FAILED and node.dlperf is None


def test_challenge_steps_out_of_order_are_409_and_another_nodes_challenge_is_404() -> None:
    node, raw = agent_node()
    _other, other_raw = agent_node()
    client = agent_client(raw)
    client.post(
        "/api/v1/agent/register",
        {"gpus": [], "driver_version": "", "cpu_cores": 1, "ram_gb": 1, "disk_gb": 1, "agent_version": "t"},
        format="json",
    )
    challenge = NodeChallenge.objects.get(node=node)
    commit: dict[str, Any] = {"challenge_id": challenge.pk, "digest": "ab" * 32, "compute_s": 1.0}
    assert client.post("/api/v1/agent/challenge/answer", commit, format="json").status_code == 409  # not fetched
    assert agent_client(other_raw).post("/api/v1/agent/challenge/answer", commit, format="json").status_code == 404
    fetched = client.post("/api/v1/agent/challenge", {}, format="json").json()["challenge"]
    assert fetched["challenge_id"] == challenge.pk and len(fetched["seed"]) == 32
    bad = client.post("/api/v1/agent/challenge/answer", {**commit, "digest": "xyz"}, format="json")
    assert bad.status_code == 400
    reveal = {"challenge_id": challenge.pk, "rows": []}
    assert client.post("/api/v1/agent/challenge/reveal", reveal, format="json").status_code == 409  # not answered
    assert agent_client(other_raw).post("/api/v1/agent/challenge", {}, format="json").json() == {"challenge": None}


def test_console_button_issues_a_challenge_and_pages_show_the_figures() -> None:
    node, _raw = agent_node(gpu_model=GPUModel.objects.get(slug="rtx-4090"), gpu_count=2, verified=True)
    staff = UserFactory(is_staff=True)
    console = Client()
    console.force_login(staff)
    response = console.post(reverse("console:node_challenge", args=[node.pk]))
    assert response.status_code == 302
    challenge = NodeChallenge.objects.get(node=node)
    assert (challenge.reason, challenge.requested_by) == (ChallengeReason.STAFF, staff)
    answer_challenge(node, speed=3.0)  # answers that no RTX 4090 could give
    page = console.get(reverse("console:node_detail", args=[node.pk])).content.decode()
    assert 'id="node-challenge-failed"' in page and "too fast" in page and "206.5" in page  # 1.25 × 165.2
    provider = Client()
    provider.force_login(node.provider.user)
    mine = provider.get(reverse("provider:node-detail", args=[node.pk])).content.decode()
    assert "too fast" in mine and 'id="node-challenges"' in mine
