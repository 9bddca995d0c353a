"""The node agent API: auth by node token, register (hardware check), heartbeat (idempotent), leases."""

import time
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import UsageRecord
from broker.models import Job, JobEvent, JobState, LeaseState
from common.errors import Conflict
from common.models import AuditLog
from common.tokens import token_generate, token_hash
from marketplace.models import Node, NodeHeartbeat, NodeStatus, NodeUptime
from marketplace.services.nodes import node_register, node_token_revoke, node_token_rotate
from marketplace.services.verification import node_verify
from marketplace.tasks import nodes_mark_offline as nodes_mark_offline_task
from tests.challenge_helpers import pass_challenge
from tests.conftest import client_for
from tests.factories import CustomerFactory, JobFactory, LeaseFactory, NodeFactory, UserFactory

pytestmark = pytest.mark.django_db


def agent_node(**fields: Any) -> tuple[Node, str]:
    raw = token_generate(prefix="rsn")
    defaults: dict[str, Any] = {
        "gpu_count": 8,
        "status": NodeStatus.REGISTERED,
        "verified": False,
        "reliability": 0.0,
        "token_hash": token_hash(raw=raw),
        "token_prefix": raw[:12],
    }
    defaults.update(fields)
    return cast(Node, NodeFactory(**defaults)), raw


def agent_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def register_body(*, count: int = 8, name: str = "NVIDIA GeForce RTX 4090", tflops: float | None = 150.2) -> dict:
    return {
        "gpus": [
            {"index": i, "name": name, "vram_gb": 24.0, "pci_device_id": "0x2684", "subsystem_vendor_id": "0x1043"}
            for i in range(count)
        ],
        "driver_version": "550.54",
        "cuda_version": "12.4",
        "cpu_cores": 64,
        "ram_gb": 256,
        "disk_gb": 4000,
        "inet_down_mbps": 2000,
        "inet_up_mbps": 800,
        "benchmark": {"tflops": tflops, "mem_bandwidth_gbs": 900.0},
        "agent_version": "0.1.0",
    }


def make_lease(node: Node, *, state: str = LeaseState.RESERVED, job_state: str = JobState.MATCHED, **fields: Any):
    now = timezone.now()
    job = JobFactory(
        customer=CustomerFactory(),
        name="train",
        gpu_count=fields.pop("gpu_count", 2),
        image="ghcr.io/acme/train:1",
        command="python train.py",
        env={"EPOCHS": "3"},
        ports=[8888],
        duration_seconds=3600,
        state=job_state,
    )
    values: dict[str, Any] = {
        "job": job,
        "node": node,
        "gpu_slots": [0, 1],
        "gpu_count": job.gpu_count,
        "price_micros": 400_000,
        "starts_at": now - timedelta(minutes=1),
        "ends_at": now + timedelta(hours=1),
        "state": state,
    }
    values.update(fields)
    return LeaseFactory(**values)


def report(lease_id: int, seq: int, *, gpu_seconds: float = 120, span_s: int = 60) -> dict:
    end = timezone.now()
    return {
        "lease_id": lease_id,
        "seq": seq,
        "gpu_seconds": gpu_seconds,
        "utilisation": 0.9,
        "interval_start": (end - timedelta(seconds=span_s)).isoformat(),
        "interval_end": end.isoformat(),
        "state": "running",
    }


@pytest.fixture
def usage_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []

    def fake_usage_ingest(*, node_id: int, reports: list[dict]) -> int:
        calls.append({"node_id": node_id, "reports": list(reports)})
        return len(reports)

    monkeypatch.setattr("broker.services.agent.usage_ingest", fake_usage_ingest)
    return calls


# --- register -------------------------------------------------------------------------------------------------------


def test_register_happy_path_stores_report_and_sets_node_online() -> None:
    node, raw = agent_node()
    response = agent_client(raw).post("/api/v1/agent/register", register_body(), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body == {
        "node_id": node.pk,
        "verified": False,
        "hardware_mismatch": "",
        "heartbeat_interval_s": 15,
        "benchmark_flag": "",
        "challenge_pending": True,  # registration issues a compute challenge
        "public_host": "",
        "port_range": [40000, 40999],
    }
    node.refresh_from_db()
    assert node.status == NodeStatus.ONLINE
    assert node.agent_registered_at is not None and node.last_heartbeat_at is not None
    assert node.dlperf is None  # the agent's own benchmark figure is never the node's dlperf
    assert node.agent_report["driver_version"] == "550.54"
    assert len(node.agent_report["gpus"]) == 8
    assert (node.cpu_cores, node.ram_gb, node.inet_down_mbps) == (64, 256, 2000)  # measured replaces declared
    assert node.hardware_mismatch == ""


def test_register_count_mismatch_blocks_verification() -> None:
    node, raw = agent_node(gpu_count=8)
    response = agent_client(raw).post("/api/v1/agent/register", register_body(count=6), format="json")
    assert response.status_code == 200
    message = "registered 8× GeForce RTX 4090, agent sees 6× GeForce RTX 4090"
    assert response.json()["hardware_mismatch"] == message
    node.refresh_from_db()
    assert node.hardware_mismatch == message
    assert node.verified is False
    with pytest.raises(Conflict, match="does not match the registration"):
        node_verify(node=node, by=UserFactory(is_staff=True))
    node.refresh_from_db()
    assert node.verified is False


def test_register_mismatch_takes_verification_away_and_a_matching_report_allows_it_again() -> None:
    node, raw = agent_node(gpu_count=8, verified=True)
    client = agent_client(raw)
    body = client.post("/api/v1/agent/register", register_body(count=8, name="NVIDIA GeForce RTX 3090"), format="json")
    assert body.json()["hardware_mismatch"] == "registered 8× GeForce RTX 4090, agent sees 8× GeForce RTX 3090"
    assert body.json()["verified"] is False
    node.refresh_from_db()
    assert node.verified is False
    assert AuditLog.objects.filter(action="node.deverify", target=f"node:{node.pk}").exists()

    fixed = client.post("/api/v1/agent/register", register_body(count=8), format="json")
    assert fixed.json()["hardware_mismatch"] == ""
    staff = UserFactory(is_staff=True)
    pass_challenge(node)
    node_verify(node=node, by=staff)
    node.refresh_from_db()
    assert node.verified is True and node.verified_at is not None
    assert AuditLog.objects.filter(action="node.verify", actor=staff, target=f"node:{node.pk}").exists()


def test_register_low_benchmark_sets_flag_for_staff() -> None:
    node, raw = agent_node()
    response = agent_client(raw).post("/api/v1/agent/register", register_body(tflops=40.0), format="json")
    assert response.status_code == 200
    flag = response.json()["benchmark_flag"]
    assert "40 FP16 TFLOPS" in flag and "24%" in flag
    node.refresh_from_db()
    assert node.benchmark_flag == flag
    assert node.hardware_mismatch == ""


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"gpus": None}, "gpus"),
        ({"cpu_cores": -1}, "cpu_cores"),
        ({"ram_gb": "lots"}, "ram_gb"),
        ({"agent_version": ""}, "agent_version"),
        (
            {
                "gpus": [
                    {"index": 0, "name": "RTX 4090", "vram_gb": 24},
                    {"index": 0, "name": "RTX 4090", "vram_gb": 24},
                ]
            },
            "once",
        ),
        ({"gpus": [{"index": 0, "name": "RTX 4090", "vram_gb": 24, "pci_device_id": "2684; drop"}]}, "pci_device_id"),
    ],
)
def test_register_bad_input_is_400_and_writes_nothing(change: dict, fragment: str) -> None:
    node, raw = agent_node()
    body = register_body()
    body.update(change)
    response = agent_client(raw).post("/api/v1/agent/register", body, format="json")
    assert response.status_code == 400
    assert fragment in response.json()["detail"]
    node.refresh_from_db()
    assert node.agent_registered_at is None and node.status == NodeStatus.REGISTERED


# --- auth -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/agent/register", "/api/v1/agent/heartbeat"])
def test_missing_and_wrong_tokens_are_401_with_a_clear_message(path: str) -> None:
    agent_node()
    missing = APIClient().post(path, {}, format="json")
    assert missing.status_code == 401
    assert "node agent token" in missing.json()["detail"]
    wrong = agent_client("rsn_not-a-real-token").post(path, {}, format="json")
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "Invalid node agent token."


def test_token_from_node_registration_works_until_rotated_or_revoked(provider: Any) -> None:
    node, raw = node_register(
        provider=provider, name="rig-1", region="eu", country="DE", gpu_model_slug="rtx-4090", gpu_count=2
    )
    assert raw.startswith("rsn_")
    assert agent_client(raw).post("/api/v1/agent/register", register_body(count=2), format="json").status_code == 200
    new_raw = node_token_rotate(node=node)
    old = agent_client(raw).post("/api/v1/agent/heartbeat", {"seq": 1}, format="json")
    assert old.status_code == 401 and old.json()["detail"] == "Invalid node agent token."
    assert agent_client(new_raw).post("/api/v1/agent/heartbeat", {"seq": 1}, format="json").status_code == 200
    node_token_revoke(node=node)
    revoked = agent_client(new_raw).get("/api/v1/agent/leases")
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]


def test_user_api_token_and_session_are_refused_on_agent_endpoints(provider_client: APIClient) -> None:
    node, _ = agent_node()
    response = provider_client.post("/api/v1/agent/register", register_body(), format="json")
    assert response.status_code == 401
    assert "user API tokens are not valid here" in response.json()["detail"]
    staff = UserFactory(is_staff=True)
    session = APIClient()
    session.force_login(staff)
    assert session.get("/api/v1/agent/leases").status_code == 401
    node.refresh_from_db()
    assert node.agent_registered_at is None


def test_node_token_is_not_accepted_on_user_apis() -> None:
    node, raw = agent_node()
    client = agent_client(raw)
    assert client.get("/api/v1/nodes/").status_code in (401, 403)
    assert client.get(f"/api/v1/nodes/{node.pk}/").status_code in (401, 403)
    assert client.post(f"/api/v1/nodes/{node.pk}/token/rotate/").status_code in (401, 403)


def test_token_of_node_a_acts_for_node_a_only() -> None:
    node_a, raw_a = agent_node()
    node_b, _ = agent_node()
    lease_b = make_lease(node_b)
    client = agent_client(raw_a)
    assert client.post("/api/v1/agent/register", register_body(count=6), format="json").json()["node_id"] == node_a.pk
    response = client.post("/api/v1/agent/heartbeat", {"seq": 1, "leases": [report(lease_b.pk, 1)]}, format="json")
    assert response.status_code == 200
    assert response.json()["ignored_leases"] == [
        {"lease_id": lease_b.pk, "seq": 1, "reason": "not a lease of this node"}
    ]
    assert response.json()["activated_leases"] == []
    assert client.get("/api/v1/agent/leases").json() == {"start": [], "stop": []}
    node_b.refresh_from_db()
    lease_b.refresh_from_db()
    assert lease_b.state == LeaseState.RESERVED
    assert node_b.agent_registered_at is None and node_b.hardware_mismatch == ""
    assert node_b.last_heartbeat_at is None and not NodeHeartbeat.objects.filter(node=node_b).exists()


# --- heartbeat ------------------------------------------------------------------------------------------------------


def test_heartbeat_marks_node_online_and_records_it() -> None:
    node, raw = agent_node(status=NodeStatus.OFFLINE)
    response = agent_client(raw).post(
        "/api/v1/agent/heartbeat",
        {"seq": 17, "status": "ok", "gpus": [{"index": 0, "utilisation": 0.93, "temperature_c": 71}]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == {
        "accepted": True,
        "duplicate": False,
        "max_seq": None,
        "next_heartbeat_s": 15,
        "activated_leases": [],
        "ended_leases": [],
        "ignored_leases": [],
        "challenge_pending": False,
    }
    node.refresh_from_db()
    assert node.status == NodeStatus.ONLINE and node.last_heartbeat_at is not None
    beat = NodeHeartbeat.objects.get(node=node)
    assert beat.seq == 17 and beat.payload["gpus"][0]["temperature_c"] == 71


def test_repeated_seq_changes_nothing(usage_calls: list[dict]) -> None:
    node, raw = agent_node()
    lease = make_lease(node, state=LeaseState.ACTIVE, job_state=JobState.RUNNING)
    client = agent_client(raw)
    Node.objects.filter(pk=node.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=10))
    body = {"seq": 5, "leases": [report(lease.pk, 1)]}
    first = client.post("/api/v1/agent/heartbeat", body, format="json")
    assert first.json()["duplicate"] is False
    node.refresh_from_db()
    seen_at = node.last_heartbeat_at
    uptime_after_first = list(NodeUptime.objects.filter(node=node).values_list("up_seconds", flat=True))
    assert sum(uptime_after_first) in (9, 10, 11)

    again = client.post("/api/v1/agent/heartbeat", body, format="json")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["accepted"] is True
    assert again.json()["max_seq"] == 5
    assert NodeHeartbeat.objects.filter(node=node).count() == 1
    assert list(NodeUptime.objects.filter(node=node).values_list("up_seconds", flat=True)) == uptime_after_first
    node.refresh_from_db()
    assert node.last_heartbeat_at == seen_at
    assert len(usage_calls) == 1
    assert usage_calls[0]["node_id"] == node.pk
    assert [(r["lease_id"], r["seq"], r["gpu_seconds"]) for r in usage_calls[0]["reports"]] == [(lease.pk, 1, 120)]


def _minute_start_behind(now: datetime, *, at_least_s: int = 10) -> datetime:
    """The start of the current minute, once it is between `at_least_s` and `at_least_s + 20` seconds behind
    (sleeps until then if needed)."""
    second = now.second + now.microsecond / 1e6
    if second < at_least_s:
        time.sleep(at_least_s - second + 0.2)
    elif second > at_least_s + 20:
        time.sleep(60 - second + at_least_s + 0.2)
    return timezone.now().replace(second=0, microsecond=0)


def test_heartbeat_adds_uptime_and_refreshes_reliability() -> None:
    """Reliability is recomputed by the heartbeat that crosses a minute boundary (at most once a minute)."""
    node, raw = agent_node()
    boundary = _minute_start_behind(timezone.now())
    previous = boundary - timedelta(seconds=5)  # the gap (< 60 s) crosses `boundary`
    gap = (timezone.now() - previous).total_seconds()
    assert gap < 58
    Node.objects.filter(pk=node.pk).update(created_at=previous - timedelta(seconds=gap), last_heartbeat_at=previous)
    assert agent_client(raw).post("/api/v1/agent/heartbeat", {"seq": 1}, format="json").status_code == 200
    up = sum(NodeUptime.objects.filter(node=node).values_list("up_seconds", flat=True))
    assert gap - 1 <= up <= gap + 30  # the request may have waited on a loaded machine
    node.refresh_from_db()
    assert node.reliability == pytest.approx(up / (up + gap), abs=0.03)  # up since `previous`, of all it existed


def test_heartbeat_within_the_minute_leaves_reliability_for_later() -> None:
    node, raw = agent_node()
    boundary = _minute_start_behind(timezone.now(), at_least_s=20)
    Node.objects.filter(pk=node.pk).update(
        created_at=boundary - timedelta(hours=1), last_heartbeat_at=boundary + timedelta(seconds=1), reliability=0.25
    )
    assert agent_client(raw).post("/api/v1/agent/heartbeat", {"seq": 1}, format="json").status_code == 200
    node.refresh_from_db()
    assert node.reliability == 0.25  # same minute as the previous heartbeat: not recomputed
    assert sum(NodeUptime.objects.filter(node=node).values_list("up_seconds", flat=True)) >= 18


def test_out_of_order_seq_is_accepted() -> None:
    node, raw = agent_node()
    client = agent_client(raw)
    for seq in (9, 3, 7):
        response = client.post("/api/v1/agent/heartbeat", {"seq": seq}, format="json")
        assert response.json()["duplicate"] is False
    # an agent that lost its state and restarts at seq 1... is told where to continue
    assert client.post("/api/v1/agent/heartbeat", {"seq": 3}, format="json").json()["max_seq"] == 9
    assert sorted(NodeHeartbeat.objects.filter(node=node).values_list("seq", flat=True)) == [3, 7, 9]


def test_first_report_of_a_reserved_lease_activates_it(usage_calls: list[dict]) -> None:
    node, raw = agent_node()
    lease = make_lease(node)
    response = agent_client(raw).post(
        "/api/v1/agent/heartbeat", {"seq": 1, "leases": [report(lease.pk, 1)]}, format="json"
    )
    assert response.json()["activated_leases"] == [lease.pk]
    lease.refresh_from_db()
    assert lease.state == LeaseState.ACTIVE and lease.activated_at is not None
    assert Job.objects.get(pk=lease.job_id).state == JobState.RUNNING
    assert JobEvent.objects.filter(job_id=lease.job_id, to_state=JobState.RUNNING).count() == 1
    second = agent_client(raw).post(
        "/api/v1/agent/heartbeat", {"seq": 2, "leases": [report(lease.pk, 2)]}, format="json"
    )
    assert second.json()["activated_leases"] == []
    assert JobEvent.objects.filter(job_id=lease.job_id, to_state=JobState.RUNNING).count() == 1


@pytest.mark.parametrize(
    ("lease_report", "fragment"),
    [
        ({"gpu_seconds": -1}, "gpu_seconds"),
        ({"utilisation": 1.5}, "utilisation"),
        ({"state": "exploded"}, "state"),
        ({"interval_start": "yesterday"}, "interval_start"),
    ],
)
def test_heartbeat_bad_lease_report_is_400_and_writes_nothing(lease_report: dict, fragment: str) -> None:
    node, raw = agent_node()
    lease = make_lease(node)
    body = {"seq": 1, "leases": [{**report(lease.pk, 1), **lease_report}]}
    response = agent_client(raw).post("/api/v1/agent/heartbeat", body, format="json")
    assert response.status_code == 400
    assert fragment in response.json()["detail"]
    assert not NodeHeartbeat.objects.filter(node=node).exists()


def test_heartbeat_usage_above_what_the_lease_gpus_can_do_is_400_and_writes_nothing(usage_calls: list[dict]) -> None:
    node, raw = agent_node()
    lease = make_lease(node, gpu_count=2)
    body = {"seq": 1, "leases": [report(lease.pk, 1, gpu_seconds=1000, span_s=60)]}
    response = agent_client(raw).post("/api/v1/agent/heartbeat", body, format="json")
    assert response.status_code == 400
    assert "more than its 2 GPU(s)" in response.json()["detail"]
    assert not NodeHeartbeat.objects.filter(node=node).exists()
    assert usage_calls == []
    lease.refresh_from_db()
    assert lease.state == LeaseState.RESERVED


def test_heartbeat_missing_seq_is_400() -> None:
    _, raw = agent_node()
    response = agent_client(raw).post("/api/v1/agent/heartbeat", {"status": "ok"}, format="json")
    assert response.status_code == 400
    assert "seq" in response.json()["detail"]


def test_heartbeat_is_a_handful_of_queries(django_assert_max_num_queries: Any, usage_calls: list[dict]) -> None:
    node, raw = agent_node()
    lease = make_lease(node, state=LeaseState.ACTIVE, job_state=JobState.RUNNING)
    client = agent_client(raw)
    client.post("/api/v1/agent/heartbeat", {"seq": 1}, format="json")
    boundary = _minute_start_behind(timezone.now(), at_least_s=16)
    Node.objects.filter(pk=node.pk).update(last_heartbeat_at=boundary + timedelta(seconds=1))
    # steady state (within the minute: no reliability refresh): the token lookup is cached; node lock, heartbeat
    # insert, node update, uptime bucket, the broker clock of the node's leases (one UPDATE, issue 12), lease
    # lookup (+ savepoints), and whether a compute challenge waits
    with django_assert_max_num_queries(11):
        response = client.post("/api/v1/agent/heartbeat", {"seq": 2, "leases": [report(lease.pk, 1)]}, format="json")
    assert response.status_code == 200
    # a repeated seq: auth, the refused insert, the duplicate check (+ savepoint statements), the challenge check
    with django_assert_max_num_queries(7):
        assert client.post("/api/v1/agent/heartbeat", {"seq": 2}, format="json").json()["duplicate"] is True


# --- leases ---------------------------------------------------------------------------------------------------------


def test_leases_lists_what_to_start_and_to_stop() -> None:
    node, raw = agent_node()
    now = timezone.now()
    running = make_lease(node, state=LeaseState.ACTIVE, job_state=JobState.RUNNING)
    soon = make_lease(node, starts_at=now + timedelta(minutes=2), ends_at=now + timedelta(hours=2))
    later = make_lease(node, starts_at=now + timedelta(hours=3), ends_at=now + timedelta(hours=4))
    failed = make_lease(node, state=LeaseState.FAILED, ended_at=now - timedelta(minutes=5), end_reason="node offline")
    old = make_lease(node, state=LeaseState.ENDED, ended_at=now - timedelta(hours=2))
    overdue = make_lease(
        node, state=LeaseState.ACTIVE, starts_at=now - timedelta(hours=2), ends_at=now - timedelta(seconds=1)
    )
    make_lease(NodeFactory())  # another node's lease is never shown

    response = agent_client(raw).get("/api/v1/agent/leases")
    assert response.status_code == 200
    body = response.json()
    assert [item["lease_id"] for item in body["start"]] == [running.pk, soon.pk]
    first = body["start"][0]
    assert first["job_id"] == running.job_id
    assert first["image"] == "ghcr.io/acme/train:1" and first["command"] == "python train.py"
    assert first["env"] == {"EPOCHS": "3"} and first["ports"] == [8888] and first["gpu_slots"] == [0, 1]
    assert first["state"] == "active" and first["starts_at"] and first["ends_at"]
    stop = {item["lease_id"]: item for item in body["stop"]}
    assert set(stop) == {failed.pk, overdue.pk}
    assert stop[failed.pk] == {"lease_id": failed.pk, "reason": "node offline", "state": "failed"}
    assert stop[overdue.pk]["reason"] == "lease period over"
    assert later.pk not in {item["lease_id"] for item in body["start"]} and old.pk not in stop


def test_leases_empty_without_leases_and_cheap(django_assert_max_num_queries: Any) -> None:
    node, raw = agent_node()
    for _ in range(5):
        make_lease(node, state=LeaseState.ACTIVE, job_state=JobState.RUNNING)
    make_lease(node, state=LeaseState.ENDED, ended_at=timezone.now())
    with django_assert_max_num_queries(3):  # auth, start list (with jobs), stop list
        body = agent_client(raw).get("/api/v1/agent/leases").json()
    assert (len(body["start"]), len(body["stop"])) == (5, 1)
    _, other_raw = agent_node()
    assert agent_client(other_raw).get("/api/v1/agent/leases").json() == {"start": [], "stop": []}


def test_agent_endpoints_are_documented_in_the_openapi_schema() -> None:
    client = client_for(UserFactory())
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/v1/agent/register", "/api/v1/agent/heartbeat", "/api/v1/agent/leases"):
        assert path in schema["paths"]
    assert "nodeAgentToken" in schema["components"]["securitySchemes"]


def test_usage_reaches_metering_once_with_the_real_ingest() -> None:
    node, raw = agent_node()
    lease = make_lease(node, state=LeaseState.ACTIVE, job_state=JobState.RUNNING)
    client = agent_client(raw)
    body = {"seq": 1, "leases": [report(lease.pk, 1, gpu_seconds=90.5)]}
    assert client.post("/api/v1/agent/heartbeat", body, format="json").json()["duplicate"] is False
    assert client.post("/api/v1/agent/heartbeat", body, format="json").json()["duplicate"] is True
    # the same usage report in a new heartbeat (an agent resending after a lost response) is not counted twice
    assert client.post("/api/v1/agent/heartbeat", {**body, "seq": 2}, format="json").json()["duplicate"] is False
    records = UsageRecord.objects.filter(node_id=node.pk)
    assert [(r.lease_ref, r.seq, r.gpu_ms) for r in records] == [(lease.pk, 1, 90_500)]


def test_a_zero_usage_exited_report_does_not_activate_a_reserved_lease(usage_calls: list[dict]) -> None:
    node, raw = agent_node()
    lease = make_lease(node)
    closed = {**report(lease.pk, 1, gpu_seconds=0, span_s=0), "state": "exited"}
    response = agent_client(raw).post("/api/v1/agent/heartbeat", {"seq": 1, "leases": [closed]}, format="json")
    assert response.json()["activated_leases"] == []
    assert response.json()["ended_leases"] == [lease.pk]
    lease.refresh_from_db()
    assert lease.state == LeaseState.ENDED  # never activated, and its GPUs are not held any longer
    assert lease.activated_at is None
    assert len(usage_calls) == 1  # still metered (billing keeps every report)


def test_an_exited_report_ends_the_lease_frees_its_gpus_and_completes_the_job() -> None:
    node, raw = agent_node()
    lease = make_lease(node, state=LeaseState.ACTIVE, job_state=JobState.RUNNING)
    client = agent_client(raw)
    done = {**report(lease.pk, 1, gpu_seconds=60), "state": "exited"}
    body = client.post("/api/v1/agent/heartbeat", {"seq": 1, "leases": [done]}, format="json").json()
    assert body["ended_leases"] == [lease.pk]
    lease.refresh_from_db()
    assert lease.state == LeaseState.ENDED and lease.end_reason == "workload exited"
    assert not lease.slots.filter(ends_at__gt=timezone.now()).exists()
    assert Job.objects.get(pk=lease.job_id).state == JobState.COMPLETED
    assert UsageRecord.objects.filter(lease_ref=lease.pk).count() == 1
    # the agent resending its report in a later heartbeat changes nothing
    again = client.post("/api/v1/agent/heartbeat", {"seq": 2, "leases": [done]}, format="json").json()
    assert again["ended_leases"] == []


def test_silent_node_goes_offline_its_leases_fail_over_and_coming_back_resurrects_nothing(
    django_capture_on_commit_callbacks: Any,
) -> None:
    node, raw = agent_node(status=NodeStatus.ONLINE)
    lease = make_lease(node, state=LeaseState.ACTIVE, job_state=JobState.RUNNING)
    Node.objects.filter(pk=node.pk).update(last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        nodes_mark_offline_task.delay()
    node.refresh_from_db()
    lease.refresh_from_db()
    assert node.status == NodeStatus.OFFLINE
    assert lease.state == LeaseState.FAILED
    assert Job.objects.get(pk=lease.job_id).state == JobState.PENDING

    client = agent_client(raw)
    assert client.post("/api/v1/agent/heartbeat", {"seq": 1}, format="json").status_code == 200
    node.refresh_from_db()
    lease.refresh_from_db()
    assert node.status == NodeStatus.ONLINE
    assert lease.state == LeaseState.FAILED
    assert [item["lease_id"] for item in client.get("/api/v1/agent/leases").json()["stop"]] == [lease.pk]
