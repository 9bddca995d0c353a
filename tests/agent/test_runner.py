"""The runner against a fake agent API: exactly-once usage across network errors, crashes and restarts."""

import itertools
from pathlib import Path

import pytest
from rigshift_agent.detect import simulate
from rigshift_agent.executor import SIM_EXIT_ENV, SimulatedExecutor
from rigshift_agent.runner import AgentFatal, Runner
from rigshift_agent.state import StateStore

from tests.agent.fakes import Clock, Crash, FakeServer


def make_runner(server: FakeServer, clock: Clock, path: Path) -> Runner:
    return Runner(
        client=server,
        hardware=simulate("4xRTX4090"),
        store=StateStore(path),
        executor=SimulatedExecutor(clock=clock),
        benchmark={"tflops": 150.0, "mem_bandwidth_gbs": 900.0},
        clock=clock,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[FakeServer, Clock, Path]:
    return FakeServer(), Clock(), tmp_path / "state.json"


def test_registers_then_reports_usage_with_per_lease_seqs(setup) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    server.offer(7, start=clock.now, end=clock.now + 3600, gpus=[0, 1])
    assert runner.step() == 15.0  # register, heartbeat 1 (nothing yet), fetch leases, start lease 7
    assert server.registrations[0]["gpus"][0]["name"] == "RTX 4090"
    assert len(server.registrations[0]["gpus"]) == 4
    assert server.registrations[0]["benchmark"] == {"tflops": 150.0, "mem_bandwidth_gbs": 900.0}
    for _ in range(3):
        clock.advance(15)
        runner.step()
    assert server.lease_seqs(7) == [1, 2, 3]
    assert server.total(7) == 2 * 45
    report = server.usage["7"][3]
    assert report["state"] == "running"
    assert report["interval_start"] == server.usage["7"][2]["interval_end"]
    assert report["utilisation"] > 0.5
    gpus = server.by_seq[4]["gpus"]
    assert [g["utilisation"] > 0 for g in gpus] == [True, True, False, False]  # only the leased GPUs are busy


def test_intervals_are_contiguous(setup) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    server.offer(7, start=clock.now, end=clock.now + 3600, gpus=[0])
    runner.step()
    for step in (15, 16, 14):
        clock.advance(step)
        runner.step()
    reports = [server.usage["7"][s] for s in server.lease_seqs(7)]
    for before, after in itertools.pairwise(reports):
        assert before["interval_end"] == after["interval_start"]
    assert [r["gpu_seconds"] for r in reports] == [15, 16, 14]


def test_network_error_resends_the_same_heartbeat_and_backs_off(setup) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    server.offer(7, start=clock.now, end=clock.now + 3600, gpus=[0, 1])
    runner.step()
    clock.advance(15)
    server.fail_next = 3
    delays = []
    for _ in range(3):
        delays.append(runner.step())
        clock.advance(2)
    assert delays[0] < delays[1] < delays[2]  # exponential back-off (with jitter of ±20%)
    attempts = server.attempts[-3:]
    assert attempts[0] == attempts[1] == attempts[2]  # the SAME heartbeat, same seq and lease reports
    runner.step()  # delivered now; the 6 s since are measured in the next one
    clock.advance(15)
    runner.step()
    assert server.total(7) == 2 * (15 + 6 + 15)
    assert [server.usage["7"][s]["gpu_seconds"] for s in server.lease_seqs(7)] == [2 * 15, 2 * 21]


@pytest.mark.parametrize("crash", ["crash_before_send", "crash_after_send"])
def test_restart_mid_lease_neither_loses_nor_double_reports(setup, crash: str) -> None:
    server, clock, path = setup
    started = clock.now
    server.offer(7, start=clock.now, end=clock.now + 3600, gpus=[0, 1, 2])
    runner = make_runner(server, clock, path)
    runner.step()
    clock.advance(15)
    runner.step()
    clock.advance(15)
    setattr(server, crash, True)
    with pytest.raises(Crash):
        runner.step()  # state saved with the pending heartbeat; the process dies before the ack
    assert runner.state.pending is not None
    pending_seq = runner.state.pending["seq"]
    del runner
    clock.advance(40)  # the agent is down a while; the (detached) workload keeps running
    restarted = make_runner(server, clock, path)
    restarted.step()  # resends the pending heartbeat first, unchanged
    clock.advance(15)
    restarted.step()
    assert server.total(7) == 3 * (clock.now - started)
    seqs = server.lease_seqs(7)
    assert seqs == list(range(1, len(seqs) + 1))
    sent = [a for a in server.attempts if a["seq"] == pending_seq]
    assert len(sent) == (2 if crash == "crash_after_send" else 1)  # resent unchanged; the server saw a duplicate
    assert all(a == sent[0] for a in sent)


def test_lease_stopped_by_the_server_is_stopped_reported_once_and_never_restarted(setup) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    server.offer(7, start=clock.now, end=clock.now + 3600, gpus=[0, 1])
    runner.step()
    clock.advance(20)
    server.stop = [{"lease_id": 7, "reason": "cancelled by the customer", "state": "ended"}]
    runner.step()  # heartbeat (running, 40), then the stop list: stopped at this moment
    clock.advance(15)
    runner.step()  # the exited report (0 more GPU-seconds)
    clock.advance(15)
    runner.step()  # the lease is still in the start list: it is not restarted
    assert server.total(7) == 2 * 20
    final = server.usage["7"][max(server.lease_seqs(7))]
    assert final["state"] == "exited"
    assert "7" not in runner.state.leases
    assert "7" in runner.state.finished


def test_usage_is_what_ran_not_what_was_booked(setup) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    server.offer(7, start=clock.now, end=clock.now + 3600, gpus=[0, 1], env={SIM_EXIT_ENV: "40"})
    runner.step()
    for _ in range(6):
        clock.advance(15)
        runner.step()
    assert server.total(7) == 2 * 40
    assert server.usage["7"][max(server.lease_seqs(7))]["state"] == "exited"


def test_lease_end_stops_the_workload(setup) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    server.offer(7, start=clock.now, end=clock.now + 50, gpus=[3])
    runner.step()
    for _ in range(6):
        clock.advance(15)
        runner.step()
    assert server.total(7) == 50
    assert server.usage["7"][max(server.lease_seqs(7))]["state"] == "exited"


def test_future_lease_waits_for_its_start(setup) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    server.offer(7, start=clock.now + 100, end=clock.now + 400, gpus=[0])
    runner.step()
    clock.advance(60)
    runner.step()
    assert server.total(7) == 0 and server.lease_seqs(7) == []
    clock.advance(60)
    runner.step()  # started now (20 s after its start time: usage counts from when it really started)
    clock.advance(30)
    runner.step()
    assert server.total(7) == 30


def test_a_refused_token_is_fatal(setup) -> None:
    server, clock, path = setup
    server.error_status = 401
    with pytest.raises(AgentFatal, match="token"):
        make_runner(server, clock, path).step()


def test_a_rejected_heartbeat_is_dropped_not_resent_forever(setup) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    runner.step()
    server.error_status = 400
    clock.advance(15)
    runner.step()
    assert runner.state.pending is None
    server.error_status = None
    clock.advance(15)
    runner.step()
    assert max(server.by_seq) == runner.state.seq


def test_docker_run_gets_exactly_the_leased_gpus() -> None:
    from rigshift_agent.docker_executor import DockerExecutor
    from rigshift_agent.state import LeaseRecord

    lease = LeaseRecord(lease_id="7", image="pytorch/pytorch", command="python t.py", env={"A": "1"}, gpu_slots=[2, 3])
    args = DockerExecutor().run_args(lease)
    assert args[:2] == ["docker", "create"]
    assert args[args.index("--gpus") + 1] == '"device=2,3"'
    assert args[args.index("-e") : args.index("-e") + 2] == ["-e", "A=1"]
    assert args[-4:] == ["pytorch/pytorch", "sh", "-c", "python t.py"]


def test_an_agent_that_lost_its_state_file_continues_above_the_servers_seq(setup, tmp_path: Path) -> None:
    server, clock, path = setup
    runner = make_runner(server, clock, path)
    for _ in range(5):
        runner.step()
        clock.advance(15)
    assert max(server.by_seq) == 5
    fresh = make_runner(server, clock, tmp_path / "new-state.json")  # the state file is gone
    fresh.step()  # seq 1 is a duplicate with max_seq 5: renumbered to 6 and accepted
    assert max(server.by_seq) == 6
    assert fresh.state.seq == 6 and fresh.state.pending is None
    clock.advance(15)
    fresh.step()
    assert max(server.by_seq) == 7
