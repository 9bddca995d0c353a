"""The agent's state file: round trip and atomic replacement."""

import json
import os
import stat
from pathlib import Path

import pytest
from rigshift_agent.state import AgentState, LeaseRecord, StateStore


def test_missing_file_is_a_fresh_state(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "none.json").load()
    assert state.seq == 0 and state.pending is None and state.leases == {}


def test_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "sub" / "state.json")
    state = AgentState(node_id=7, seq=41, pending={"seq": 41, "status": "ok", "gpus": [], "leases": []})
    state.leases["12"] = LeaseRecord(
        lease_id="12",
        job_id="3",
        image="pytorch/pytorch:2.3.0",
        command="python train.py",
        env={"EPOCHS": "3"},
        ports=["8888"],
        gpu_slots=[0, 1],
        starts_at="2026-01-01T00:00:00Z",
        ends_at="2026-01-01T01:00:00Z",
        handle="sim-12",
        run_started=1_767_225_600,
        reported_until=1_767_225_630,
        seq=2,
    )
    state.mark_finished("9")
    store.save(state)
    loaded = store.load()
    assert loaded == state
    assert loaded.leases["12"].running
    assert loaded.finished == ["9"]


def test_save_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.save(AgentState(seq=1))
    store.save(AgentState(seq=2))
    assert json.loads(path.read_text())["seq"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.save(AgentState(seq=5))

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        store.save(AgentState(seq=6))
    assert store.load().seq == 5
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
