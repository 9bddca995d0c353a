"""A booked job on a simulated node, the real agent Runner against the agent API in process: phases pulling →
starting → running, logs containing the command, an exit code that completes or fails the job, the customer
paying only for what ran; logs and exit through the customer API; another customer and another node kept out."""

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import requests
from django.utils import timezone
from rest_framework.test import APIClient
from rigshift_agent.detect import simulate, simulated_challenge_tflops
from rigshift_agent.executor import SimulatedExecutor
from rigshift_agent.runner import Runner
from rigshift_agent.state import MemoryStore, StateStore
from rigshift_client import ApiClient

from billing.selectors.wallet import wallet_balance
from broker.models import Job, JobLogLine, JobState, Lease, LeaseState
from broker.services.leases import lease_create
from marketplace.models import Node
from simulator.agents import SERVER, InProcessSession
from tests.broker.booking_helpers import fund
from tests.broker.test_agent_api import agent_client, agent_node
from tests.conftest import client_for
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


_CLOCKS: list["Clock"] = []
_REAL_NOW = timezone.now


class Clock:
    """The agent's clock, and the server's too (the autouse fixture below): agent and broker see one time."""

    def __init__(self) -> None:
        self.now = float(int(_REAL_NOW().timestamp()))
        _CLOCKS.append(self)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds


def runner(raw: str, clock: Clock, store: Any = None) -> Runner:
    return Runner(
        client=ApiClient(server=SERVER, token=raw, session=cast(requests.Session, InProcessSession())),
        hardware=simulate("2xRTX4090"),
        store=store or MemoryStore(),
        executor=SimulatedExecutor(clock=clock, pull_s=4, start_s=2),
        clock=clock,
        interval=15.0,
        simulated_tflops=simulated_challenge_tflops("2xRTX4090"),
    )


def book(client: APIClient, **overrides: Any) -> Job:
    body = {
        "name": "nb",
        "gpu_count": 2,
        "image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
        "command": "python train.py",
        "ports": [8888],
        "max_price": "1.00",
        "duration_hours": "1",
        "verified_only": False,
        **overrides,
    }
    response = client.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    return Job.objects.get(pk=response.json()["id"])


@pytest.fixture(autouse=True)
def _shared_clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The broker's clock follows the test's agent clock, so reports are never 'in the future'."""
    _CLOCKS.clear()
    monkeypatch.setattr(
        timezone, "now", lambda: datetime.fromtimestamp(_CLOCKS[-1].now, tz=UTC) if _CLOCKS else _REAL_NOW()
    )
    yield
    _CLOCKS.clear()


@pytest.fixture
def setup() -> dict[str, Any]:
    node, raw = agent_node(gpu_count=2, price_micros=400_000)
    customer = CustomerFactory()
    fund(customer, 50)
    return {"node": node, "raw": raw, "customer": customer, "client": client_for(customer.user)}


def lease_for(job: Job, node: Node, clock: Clock, hours: float = 1) -> Lease:
    start = datetime.fromtimestamp(clock.now, tz=UTC) - timedelta(seconds=1)
    return lease_create(
        job_id=job.pk,
        node_id=node.pk,
        gpu_slots=[0, 1],
        price_micros=400_000,
        starts_at=start,
        ends_at=start + timedelta(hours=hours),
    )


def test_job_shows_pulling_starting_running_logs_with_its_command_and_fails_with_exit_code_3(setup) -> None:
    clock = Clock()
    job = book(setup["client"], command="python train.py; exit 3")
    lease = lease_for(job, setup["node"], clock)
    agent = runner(setup["raw"], clock)
    agent.step()  # register, heartbeat, fetch the lease, launch it: pulling
    clock.advance(5)
    agent.step()  # pulling and starting reported
    job.refresh_from_db()
    assert job.state == JobState.MATCHED and job.phase == "starting"
    steps = [e.to_state for e in job.events.all()]
    assert steps[-2:] == ["pulling", "starting"]
    clock.advance(10)
    agent.step()  # running since t+6: activated, usage, first log lines
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.phase == "running"
    lease.refresh_from_db()
    assert lease.port_map == [{"container": 8888, "host": 40000, "protocol": "tcp"}]
    body = setup["client"].get(f"/api/v1/jobs/{job.pk}/logs/").json()
    assert body["lines"][0]["text"] == "$ python train.py; exit 3"
    assert body["next"] == body["lines"][-1]["seq"]
    for _ in range(3):
        clock.advance(15)
        agent.step()
    job.refresh_from_db()
    assert (job.state, job.exit_code, job.end_reason) == (JobState.FAILED, 3, "exited")
    assert job.events.last().note == "exited with code 3"
    assert job.held_micros == 0
    # paid at most for the 20 s it ran on 2 GPUs at $0.40/GPU-hour (the broker clock bills from activation to the
    # reported exit), never for the pull nor the hour booked
    charged = 50_000_000 - wallet_balance(user=setup["customer"].user).available_micros
    assert 0 < charged <= 2 * 20 * 400_000 // 3600
    api = setup["client"].get(f"/api/v1/jobs/{job.pk}/").json()
    assert (api["state"], api["exit_code"], api["end_reason"], api["phase"]) == ("failed", 3, "exited", "exited")
    rest = setup["client"].get(f"/api/v1/jobs/{job.pk}/logs/", {"after": body["next"]}).json()
    assert rest["lines"][-1]["text"] == "exited with code 3" and rest["lines"][-1]["stream"] == "stderr"
    texts = [line.text for line in JobLogLine.objects.filter(job=job)]
    assert len(texts) == len(set(texts))


def test_zero_exit_at_the_end_of_its_duration_completes_the_job(setup) -> None:
    clock = Clock()
    job = book(setup["client"], duration_hours="0.01")  # 36 s
    lease_for(job, setup["node"], clock, hours=0.01)
    agent = runner(setup["raw"], clock)
    for _ in range(5):
        agent.step()
        clock.advance(15)
    job.refresh_from_db()
    assert (job.state, job.exit_code, job.end_reason) == (JobState.COMPLETED, 0, "exited")


def test_image_pull_failure_fails_the_job_and_charges_nothing(setup) -> None:
    clock = Clock()
    job = book(setup["client"], env={"RIGSHIFT_SIM_PULL_FAIL": "1"})
    lease = lease_for(job, setup["node"], clock)
    agent = runner(setup["raw"], clock)
    for _ in range(3):
        agent.step()
        clock.advance(5)
    job.refresh_from_db()
    lease.refresh_from_db()
    assert (job.state, job.end_reason, job.exit_code) == (JobState.FAILED, "image_pull_failed", None)
    assert lease.state == LeaseState.ENDED and lease.activated_at is None
    assert wallet_balance(user=setup["customer"].user).available_micros == 50_000_000
    assert "image pull failed" in job.events.last().note


def test_agent_restarted_mid_lease_neither_loses_nor_repeats_log_lines(setup, tmp_path) -> None:
    clock = Clock()
    job = book(setup["client"])
    lease_for(job, setup["node"], clock)
    path = tmp_path / "state.json"
    agent = runner(setup["raw"], clock, StateStore(path))
    agent.step()
    clock.advance(30)
    agent.step()
    agent.state.pending = agent.build_heartbeat()  # built and saved, then the process dies before sending it
    agent.store.save(agent.state)
    del agent
    clock.advance(40)
    again = runner(setup["raw"], clock, StateStore(path))
    for _ in range(3):
        again.step()
        clock.advance(15)
    assert JobLogLine.objects.filter(job=job).count() > 12
    lines = list(JobLogLine.objects.filter(job=job).order_by("id").values_list("seq", "text"))
    assert [seq for seq, _ in lines] == list(range(1, len(lines) + 1))  # every line, once, in order
    steps = [int(text.split()[1].rstrip(":")) for _, text in lines if text.startswith("step ")]
    steps += [int(text.split()[2]) for _, text in lines if text.startswith("warning: step ")]
    assert sorted(steps) == list(range(1, max(steps) + 1))


def test_another_customer_gets_404_and_a_node_cannot_post_logs_for_another_nodes_lease(setup) -> None:
    clock = Clock()
    job = book(setup["client"])
    lease = lease_for(job, setup["node"], clock)
    other = client_for(CustomerFactory().user)
    assert other.get(f"/api/v1/jobs/{job.pk}/logs/").status_code == 404
    assert other.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    _, raw = agent_node(gpu_count=2)
    now = timezone.now().isoformat()
    line = {"lease_id": lease.pk, "seq": 1, "at": now, "stream": "stdout", "text": "forged"}
    phase = {"lease_id": lease.pk, "phase": "running", "at": now, "ports": [{"container": 22, "host": 1}]}
    body = agent_client(raw).post(
        "/api/v1/agent/heartbeat", {"seq": 1, "logs": [line], "events": [phase]}, format="json"
    )
    assert body.status_code == 200
    assert {i["reason"] for i in body.json()["ignored_leases"]} == {
        "log lines for a lease of another node",
        "phase for a lease of another node",
    }
    assert not JobLogLine.objects.filter(job=job).exists()
    lease.refresh_from_db()
    assert lease.port_map == [] and Job.objects.get(pk=job.pk).phase == ""


def test_bad_after_is_a_400(setup) -> None:
    job = book(setup["client"])
    assert setup["client"].get(f"/api/v1/jobs/{job.pk}/logs/", {"after": "x"}).status_code == 400
    assert setup["client"].get(f"/api/v1/jobs/{job.pk}/logs/", {"after": "-1"}).status_code == 400


def test_server_keeps_the_last_lines_of_each_job(setup, settings) -> None:
    settings.RIGSHIFT_JOB_LOG_MAX_LINES = 10
    clock = Clock()
    job = book(setup["client"])
    lease = lease_for(job, setup["node"], clock)
    now = timezone.now().isoformat()
    lines = [{"lease_id": lease.pk, "seq": i, "at": now, "stream": "stdout", "text": f"line {i}"} for i in range(1, 26)]
    client = agent_client(setup["raw"])
    assert client.post("/api/v1/agent/heartbeat", {"seq": 1, "logs": lines}, format="json").status_code == 200
    assert client.post("/api/v1/agent/heartbeat", {"seq": 2, "logs": lines[-3:]}, format="json").status_code == 200
    kept = list(JobLogLine.objects.filter(job=job).values_list("text", flat=True))
    assert kept == [f"line {i}" for i in range(16, 26)]


def test_job_page_shows_the_log_the_exit_code_and_the_privacy_note(setup) -> None:
    from django.test import Client

    clock = Clock()
    job = book(setup["client"], command="python train.py; exit 3")
    lease_for(job, setup["node"], clock)
    agent = runner(setup["raw"], clock)
    for _ in range(5):
        agent.step()
        clock.advance(15)
    page = Client()
    page.force_login(setup["customer"].user)
    body = page.get(f"/app/jobs/{job.pk}/").content.decode()
    assert 'id="job-log"' in body and "provider's machine" in body
    assert 'id="job-exit-code">3<' in body and "Exited" in body
    part = page.get(f"/app/jobs/{job.pk}/logs/", {"after": 0}).content.decode()
    assert "$ python train.py; exit 3" in part and "log-stderr" in part
    assert "hx-trigger" not in part.split('id="job-log-poller"')[1]  # ended and all shown: no more polling
    assert page.get(f"/app/jobs/{job.pk}/logs/", {"after": "x"}).status_code == 400
    other = Client()
    other.force_login(CustomerFactory().user)
    assert other.get(f"/app/jobs/{job.pk}/logs/").status_code == 404
    assert "Not private from the provider" in page.get("/app/jobs/new/").content.decode()
