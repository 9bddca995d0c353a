"""The Docker executor against a fake `docker` that records its arguments and plays back inspect, port and logs:
safe-by-default arguments (the lease's GPUs, CPU and memory limits, shared memory, its own network, mapped ports,
SSH keys, no privilege), phases, exit codes and reasons, logs read once across an agent restart, and cleanup.
A last test runs a real container where Docker works, and is skipped (with the reason) where it does not."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rigshift_agent.detect import simulate
from rigshift_agent.docker_executor import DockerExecutor
from rigshift_agent.runner import Runner
from rigshift_agent.state import LeaseRecord, StateStore

from tests.agent.fakes import Clock, FakeServer

FAKE = Path(__file__).with_name("fake_docker.py")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop"


class Docker:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = tmp_path / "docker-calls.jsonl"
        self.play_file = tmp_path / "docker-play.json"
        monkeypatch.setenv("FAKE_DOCKER_LOG", str(self.log))
        monkeypatch.setenv("FAKE_DOCKER_PLAY", str(self.play_file))
        self.play(inspect=None)

    def play(self, **values: Any) -> None:
        self.play_file.write_text(json.dumps(values))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [call[0] if call[0] != "network" else f"network {call[1]}" for call in self.calls()]


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Docker:
    return Docker(tmp_path, monkeypatch)


def executor() -> DockerExecutor:
    return DockerExecutor(docker=str(FAKE), background=False)


def lease(**fields: Any) -> LeaseRecord:
    values: dict[str, Any] = {
        "lease_id": "7",
        "image": "pytorch/pytorch:2.3.1",
        "command": "python train.py",
        "env": {"EPOCHS": "3"},
        "gpu_slots": [2, 3],
        "cpus": 16.0,
        "memory_gb": 57.6,
        "port_map": [{"container": 8888, "host": 40000, "protocol": "tcp"}],
    }
    values.update(fields)
    return LeaseRecord(**values)


def running(started: str = "2027-01-15T08:00:00.123456789Z") -> dict[str, Any]:
    return {"Status": "running", "Running": True, "StartedAt": started, "FinishedAt": "0001-01-01T00:00:00Z"}


def test_create_arguments_are_safe_by_default() -> None:
    rec = lease(ssh_keys=[KEY], port_map=[{"container": 8888, "host": 40000}, {"container": 22, "host": 40001}])
    args = executor().run_args(rec)
    assert args[1:4] == ["create", "--name", "rigshift-lease-7"]
    assert args[args.index("--gpus") + 1] == '"device=2,3"'
    assert args[args.index("--cpus") + 1] == "16"
    assert args[args.index("--memory") + 1] == f"{int(57.6 * 1024)}m"
    assert args[args.index("--shm-size") + 1] == "8g"
    assert args[args.index("--network") + 1] == "rigshift-lease-7"
    assert args[args.index("--security-opt") + 1] == "no-new-privileges"
    assert "--pids-limit" in args
    assert not any(a.startswith("--privileged") or a.startswith("--cap-add") for a in args)
    assert not any(a in ("-v", "--volume", "--mount") for a in args)  # nothing shared with the host or the next lease
    published = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    assert published == ["40000:8888/tcp", "40001:22/tcp"]
    env = [args[i + 1] for i, a in enumerate(args) if a == "-e"]
    assert env == ["EPOCHS=3", f"PUBLIC_KEY={KEY}"]
    assert args[args.index("pytorch/pytorch:2.3.1") + 1 : -1] == ["sh", "-c"]
    assert "authorized_keys" in args[-1] and args[-1].endswith("; python train.py")


def test_start_pulls_creates_starts_then_follows_inspect(docker: Docker) -> None:
    ex, rec = executor(), lease()
    assert ex.start(rec) == "rigshift-lease-7"
    assert docker.commands() == ["network create", "pull", "create", "start"]
    assert docker.calls()[1] == ["pull", "pytorch/pytorch:2.3.1"]
    docker.play(inspect=running(), port="8888/tcp -> 0.0.0.0:40000\n8888/tcp -> [::]:40000\n")
    status = ex.status(rec)
    assert (status.phase, status.started_at) == ("running", 1_800_000_000)  # 2027-01-15T08:00:00Z
    assert ex.published_ports(rec) == [{"container": 8888, "host": 40000, "protocol": "tcp"}]
    docker.play(
        inspect={
            "Status": "exited",
            "Running": False,
            "ExitCode": 3,
            "OOMKilled": False,
            "StartedAt": "2027-01-15T08:00:00Z",
            "FinishedAt": "2027-01-15T08:10:00.5Z",
        }
    )
    ended = ex.status(rec)
    assert (ended.phase, ended.exit_code, ended.reason) == ("exited", 3, "exited")
    assert ended.ended_at is not None and ended.started_at is not None and ended.ended_at - ended.started_at == 600
    docker.play(
        inspect={
            "Status": "exited",
            "Running": False,
            "ExitCode": 137,
            "OOMKilled": True,
            "StartedAt": "2027-01-15T08:00:00Z",
            "FinishedAt": "2027-01-15T08:01:00Z",
        }
    )
    assert ex.status(rec).reason == "oom"
    ex.stop(rec)
    assert docker.commands()[-3:] == ["stop", "rm", "network rm"]
    assert docker.calls()[-2] == ["rm", "-f", "rigshift-lease-7"]


def test_a_failed_pull_is_reported_as_such(docker: Docker) -> None:
    docker.play(inspect=None, pull_rc=1, pull_err="pull access denied for nope/nope")
    ex, rec = executor(), lease(image="nope/nope")
    ex.start(rec)
    status = ex.status(rec)
    assert (status.phase, status.reason) == ("exited", "image_pull_failed")
    assert "pull access denied" in status.detail
    assert "create" not in docker.commands()


def test_logs_are_read_once_and_split_by_stream(docker: Docker) -> None:
    ex, rec = executor(), lease()
    t1, t2 = "2027-01-15T08:00:01.000000000Z", "2027-01-15T08:00:02.000000000Z"
    docker.play(inspect=running(), stdout=f"{t1} $ python train.py\n{t1} epoch 1\n", stderr=f"{t2} warning: slow\n")
    first = ex.logs(rec, limit=2)
    assert [(line.stream, line.text) for line in first] == [("stdout", "$ python train.py"), ("stdout", "epoch 1")]
    rest = ex.logs(rec, limit=10)
    assert [(line.stream, line.text) for line in rest] == [("stderr", "warning: slow")]
    assert ex.logs(rec, limit=10) == []
    assert docker.calls()[-1][:4] == ["logs", "--timestamps", "--since", t2]


def test_agent_restarted_mid_lease_with_docker_neither_loses_nor_repeats_lines(docker: Docker, tmp_path: Path) -> None:
    server, clock, path = FakeServer(), Clock(start=1_800_000_000), tmp_path / "state.json"

    def agent() -> Runner:
        return Runner(
            client=server,
            hardware=simulate("4xRTX4090"),
            store=StateStore(path),
            executor=executor(),
            clock=clock,
            interval=15.0,
            port_range=(40000, 40009),
        )

    server.offer(7, start=clock.now, end=clock.now + 3600, gpus=[0, 1])
    server.start[0]["ports"] = [8888]
    docker.play(inspect=running("2027-01-15T08:00:00Z"))
    stamps = [f"2027-01-15T08:00:{i:02d}.000000000Z" for i in range(1, 9)]
    lines = "".join(f"{ts} line {i}\n" for i, ts in enumerate(stamps[:4], start=1))
    docker.play(inspect=running("2027-01-15T08:00:00Z"), stdout=lines)
    first = agent()
    first.step()
    clock.advance(15)
    first.step()
    del first  # the agent dies; the container keeps running and printing
    lines = "".join(f"{ts} line {i}\n" for i, ts in enumerate(stamps, start=1))
    docker.play(inspect=running("2027-01-15T08:00:00Z"), stdout=lines)
    again = agent()
    for _ in range(2):
        clock.advance(15)
        again.step()
    sent = [line for hb in sorted(server.by_seq) for line in server.by_seq[hb].get("logs", [])]
    assert [line["text"] for line in sent] == [f"line {i}" for i in range(1, 9)]
    assert [line["seq"] for line in sent] == list(range(1, 9))
    created = next(call for call in docker.calls() if call[0] == "create")
    assert created[created.index("-p") + 1] == "40000:8888/tcp"
    half = simulate("4xRTX4090").cpu_cores / 2  # 2 of the 4 GPUs: half the cores
    assert created[created.index("--cpus") + 1] == f"{half:g}"


@pytest.mark.skipif(
    os.environ.get("RIGSHIFT_TEST_REAL_DOCKER") != "1" or shutil.which("docker") is None,
    reason="needs Docker that can start containers (set RIGSHIFT_TEST_REAL_DOCKER=1); "
    "this machine's OCI runtime is refused setrlimit, so containers cannot start here",
)
def test_a_real_container_runs_logs_and_exits_with_its_code(tmp_path: Path) -> None:
    ex = DockerExecutor(background=False)
    rec = lease(
        image="alpine:3.20",
        command="echo hello from rigshift; exit 3",
        gpu_slots=[],
        port_map=[],
        cpus=1.0,
        memory_gb=1.0,
    )
    try:
        ex.start(rec)
        for _ in range(60):
            status = ex.status(rec)
            if status.phase == "exited":
                break
            subprocess.run(["sleep", "0.5"], check=False)
        assert (status.exit_code, status.reason) == (3, "exited")
        assert [line.text for line in ex.logs(rec, limit=10)] == ["hello from rigshift"]
    finally:
        ex.stop(rec)
