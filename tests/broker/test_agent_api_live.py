"""End to end over HTTP: the real node agent (simulated hardware) against the live server's agent API."""

from datetime import timedelta
from typing import Any, cast

import pytest
from django.utils import timezone

from billing.models import UsageRecord
from broker.models import Job, JobState, Lease, LeaseState
from marketplace.models import Node, NodeHeartbeat, NodeStatus
from marketplace.services.nodes import node_register
from tests.factories import CustomerFactory, JobFactory, LeaseFactory, ProviderFactory
from tests.live_clock import ServerClock

rigshift_agent = pytest.importorskip("rigshift_agent.runner")
from rigshift_agent.detect import simulate, simulated_benchmark, simulated_challenge_tflops  # noqa: E402
from rigshift_agent.executor import SimulatedExecutor  # noqa: E402
from rigshift_agent.state import MemoryStore  # noqa: E402
from rigshift_client import ApiClient  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Clock:
    def __init__(self) -> None:
        self.now = timezone.now().timestamp()

    def __call__(self) -> float:
        return self.now


def runner_for(live_server: Any, raw: str, profile: str, clock: Any) -> Any:
    return rigshift_agent.Runner(
        client=ApiClient(server=live_server.url, token=raw),
        hardware=simulate(profile),
        store=MemoryStore(),
        executor=SimulatedExecutor(clock=clock),
        benchmark=simulated_benchmark(profile),
        clock=clock,
        interval=15.0,
        simulated_tflops=simulated_challenge_tflops(profile),
    )


def test_agent_registers_heartbeats_runs_a_lease_and_stops_it(live_server: Any, monkeypatch: Any) -> None:
    node, raw = node_register(
        provider=ProviderFactory(), name="rig-a", region="eu", country="DE", gpu_model_slug="rtx-4090", gpu_count=2
    )
    clock = ServerClock(monkeypatch)  # the agent's simulated time is the server's time too
    runner = runner_for(live_server, raw, "2xRTX4090", clock)

    assert runner.step() == 15.0  # register, heartbeat, fetch leases
    assert runner.last_register["hardware_mismatch"] == "" and runner.last_register["benchmark_flag"] == ""
    node.refresh_from_db()
    assert node.status == NodeStatus.ONLINE and node.agent_registered_at is not None
    # the registration's compute challenge, answered by the simulated agent at 80% of an RTX 4090's 165.2 TFLOPS
    assert runner.last_challenge["state"] == "passed"
    assert node.dlperf == pytest.approx(132.2)

    now = timezone.now()
    job = JobFactory(
        customer=CustomerFactory(),
        name="train",
        gpu_count=2,
        image="ghcr.io/acme/train:1",
        duration_seconds=3600,
        state=JobState.MATCHED,
    )
    lease = cast(
        Lease,
        LeaseFactory(
            job=job,
            node=node,
            gpu_slots=[0, 1],
            gpu_count=2,
            price_micros=400_000,
            starts_at=now - timedelta(seconds=5),
            ends_at=now + timedelta(hours=1),
        ),
    )
    clock.now += 15
    runner.step()  # picks the lease up and starts it
    clock.now += 15
    runner.step()  # reports 15 s × 2 GPUs: the lease becomes active
    lease.refresh_from_db()
    assert lease.state == LeaseState.ACTIVE
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    assert sum(r.gpu_ms for r in UsageRecord.objects.filter(lease_ref=lease.pk)) == 30_000

    Lease.objects.filter(pk=lease.pk).update(state=LeaseState.FAILED, ended_at=timezone.now(), end_reason="drained")
    clock.now += 15
    runner.step()  # the stop list withdraws it
    clock.now += 15
    runner.step()  # the final "exited" report
    assert UsageRecord.objects.filter(lease_ref=lease.pk, state="exited").exists()
    assert NodeHeartbeat.objects.filter(node=node).count() == 5


def test_agent_on_the_wrong_hardware_is_told_and_node_of_another_token_untouched(live_server: Any) -> None:
    provider = ProviderFactory()
    node, raw = node_register(
        provider=provider, name="rig-8", region="eu", country="DE", gpu_model_slug="rtx-4090", gpu_count=8
    )
    other, _ = node_register(
        provider=provider, name="rig-other", region="eu", country="DE", gpu_model_slug="rtx-4090", gpu_count=8
    )
    runner = runner_for(live_server, raw, "6xRTX4090", Clock())
    runner.step()
    expected = "registered 8× GeForce RTX 4090, agent sees 6× GeForce RTX 4090"
    assert runner.last_register["hardware_mismatch"] == expected
    assert Node.objects.get(pk=node.pk).hardware_mismatch == expected
    assert Node.objects.get(pk=other.pk).agent_registered_at is None
