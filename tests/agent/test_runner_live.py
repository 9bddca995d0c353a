"""The real agent against the real agent API (pytest-django live_server): a restart mid-lease neither
loses nor double-reports usage in the server's usage records."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from django.utils import timezone
from rigshift_agent.detect import simulate
from rigshift_agent.executor import SimulatedExecutor
from rigshift_agent.runner import Runner
from rigshift_agent.state import StateStore
from rigshift_client import ApiClient

from billing.models import UsageRecord
from broker.models import LeaseState
from marketplace.models import Customer, Node, NodeHeartbeat, NodeStatus
from marketplace.services.nodes import node_register
from tests.agent.fakes import Clock, Crash
from tests.factories import CustomerFactory, GPUModelFactory, JobFactory, LeaseFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)


class CrashingClient(ApiClient):
    """A real HTTP client that can "die" right after the server answered a heartbeat."""

    crash_after_heartbeat = False

    def post(self, path: str, **kwargs: Any) -> Any:
        body = super().post(path, **kwargs)
        if path.endswith("/heartbeat") and self.crash_after_heartbeat:
            self.crash_after_heartbeat = False
            raise Crash("killed before the acknowledgement was applied")
        return body


def make_runner(url: str, token: str, clock: Clock, path: Path) -> tuple[Runner, CrashingClient]:
    client = CrashingClient(server=url, token=token)
    runner = Runner(
        client=client,
        hardware=simulate("2xRTX4090"),
        store=StateStore(path),
        executor=SimulatedExecutor(clock=clock),
        benchmark={"tflops": 150.0, "mem_bandwidth_gbs": 850.0},
        clock=clock,
        interval=15,
    )
    return runner, client


def test_agent_restarted_mid_lease_reports_usage_exactly_once(
    live_server: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    GPUModelFactory(slug="rtx-4090")
    provider = ProviderFactory()
    node, token = node_register(
        provider=provider, name="rig-1", region="eu", country="DE", gpu_model_slug="rtx-4090", gpu_count=2
    )
    now = timezone.now()
    customer = cast(Customer, CustomerFactory())
    job = JobFactory(customer=customer, name="train", gpu_count=2, image="pytorch/pytorch", duration_seconds=3600)
    lease = LeaseFactory(
        job=job,
        node=node,
        gpu_slots=[0, 1],
        gpu_count=2,
        price_micros=400_000,
        starts_at=now - timedelta(seconds=1),
        ends_at=now + timedelta(hours=1),
    )
    clock = Clock(start=int(now.timestamp()))
    # the server's time follows the agent's simulated clock: the broker refuses usage reported for the future
    monkeypatch.setattr(timezone, "now", lambda: datetime.fromtimestamp(clock.now, UTC))
    state_file = tmp_path / "agent.json"

    runner, client = make_runner(live_server.url, token, clock, state_file)
    assert runner.step() == 15  # register, first heartbeat, fetch and start the lease
    node.refresh_from_db()
    assert node.status == NodeStatus.ONLINE
    assert node.hardware_mismatch == ""
    started = clock.now
    clock.advance(15)
    runner.step()
    lease.refresh_from_db()
    assert lease.state == LeaseState.ACTIVE  # the first usage report activates the lease
    clock.advance(15)
    client.crash_after_heartbeat = True
    with pytest.raises(Crash):
        runner.step()  # the server applied the heartbeat; the agent died before recording the ack
    del runner, client

    clock.advance(20)
    restarted, _ = make_runner(live_server.url, token, clock, state_file)
    restarted.step()  # resends the pending heartbeat (a duplicate to the server), then goes on
    clock.advance(15)
    restarted.step()

    records = UsageRecord.objects.filter(node_id=node.pk, lease_ref=lease.pk).order_by("seq")
    assert [r.seq for r in records] == [1, 2, 3]  # seq 2 arrived twice, recorded once
    assert sum(r.gpu_ms for r in records) == 2 * (clock.now - started) * 1000
    assert NodeHeartbeat.objects.filter(node=node).count() == restarted.state.seq


def test_agent_with_a_lost_state_file_continues_above_the_servers_seq(live_server: Any, tmp_path: Path) -> None:
    GPUModelFactory(slug="rtx-4090")
    node, token = node_register(
        provider=ProviderFactory(), name="rig-1", region="eu", country="DE", gpu_model_slug="rtx-4090", gpu_count=2
    )
    clock = Clock()
    runner, _ = make_runner(live_server.url, token, clock, tmp_path / "old.json")
    for _ in range(3):
        runner.step()
        clock.advance(15)
    fresh, _ = make_runner(live_server.url, token, clock, tmp_path / "new.json")
    fresh.step()
    seqs = sorted(NodeHeartbeat.objects.filter(node=node).values_list("seq", flat=True))
    assert seqs == [1, 2, 3, 4]
    assert fresh.state.seq == 4 and fresh.state.pending is None


def test_wrong_token_stops_the_agent(live_server: Any, tmp_path: Path) -> None:
    from rigshift_agent.runner import AgentFatal

    runner, _ = make_runner(live_server.url, "rsn_wrong", Clock(), tmp_path / "a.json")
    with pytest.raises(AgentFatal):
        runner.step()
    assert not Node.objects.exists()
