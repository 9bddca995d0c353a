"""The agent's durable state: sequence numbers, the heartbeat in flight, and the leases it runs.

Written atomically (a temporary file in the same folder, fsync, os.replace) so a crash leaves either the
old or the new file, never half of one. The runner saves it BEFORE sending a heartbeat: after a restart,
a heartbeat that may or may not have reached the server is resent unchanged (same seq, so the server
drops the duplicate) and usage already put into a heartbeat is never measured again.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_VERSION = 2
FINISHED_KEPT = 500  # ids of closed leases remembered, so a stale start list cannot restart them


@dataclass
class LeaseRecord:
    lease_id: str
    job_id: str = ""
    image: str = ""
    command: str = ""
    env: dict[str, str] = field(default_factory=dict)
    ports: list[Any] = field(default_factory=list)
    gpu_slots: list[int] = field(default_factory=list)
    starts_at: str = ""
    ends_at: str = ""
    handle: str = ""  # executor handle (container id, or the simulated run's id)
    run_started: int | None = None  # epoch seconds the workload started
    run_ended: int | None = None  # epoch seconds it stopped (exited, stopped or lease end)
    stop_reason: str = ""
    reported_until: int | None = None  # usage up to here is already in a (sent or pending) heartbeat
    seq: int = 0  # last per-lease sequence number used
    final_reported: bool = False  # an "exited" report has been put into a heartbeat
    # Phases, exit and connection (issue 14).
    launched_at: int | None = None  # epoch seconds the agent began pulling the image
    phase: str = ""  # pulling | starting | running | exited
    events: list[dict[str, Any]] = field(default_factory=list)  # phase changes not yet put into a heartbeat
    exit_code: int | None = None
    exit_reason: str = ""  # exited | oom | image_pull_failed | start_failed | stopped | lease_ended
    port_map: list[dict[str, Any]] = field(default_factory=list)  # [{container, host, protocol}]
    ssh: bool = False
    ssh_keys: list[str] = field(default_factory=list)
    cpus: float | None = None  # the lease's share of the node's CPU cores
    memory_gb: float | None = None  # …and of its memory
    # Logs: the executor's position in the workload's output, and the last line number used.
    log_cursor: str = ""
    log_seq: int = 0
    logs_drained: bool = False  # the workload ended and every line of it is in a heartbeat

    def __post_init__(self) -> None:
        if self.launched_at is None and self.run_started is not None:  # a state file from before phases
            self.launched_at = self.run_started
            self.phase = self.phase or "running"

    @property
    def running(self) -> bool:
        return self.run_started is not None and self.run_ended is None

    @property
    def live(self) -> bool:
        """Launched (pulling, starting or running) and not ended."""
        return self.launched_at is not None and self.run_ended is None


@dataclass
class AgentState:
    node_id: int | None = None
    seq: int = 0  # last node-level heartbeat sequence number used
    pending: dict[str, Any] | None = None  # the heartbeat built and saved but not yet acknowledged
    leases: dict[str, LeaseRecord] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    version: int = STATE_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["leases"] = {k: asdict(v) for k, v in self.leases.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentState:
        leases = {str(k): LeaseRecord(**v) for k, v in (data.get("leases") or {}).items()}
        return cls(
            node_id=data.get("node_id"),
            seq=int(data.get("seq", 0)),
            pending=data.get("pending"),
            leases=leases,
            finished=[str(x) for x in data.get("finished", [])],
            version=int(data.get("version", STATE_VERSION)),
        )

    def mark_finished(self, lease_id: str) -> None:
        self.leases.pop(lease_id, None)
        if lease_id not in self.finished:
            self.finished.append(lease_id)
            del self.finished[:-FINISHED_KEPT]


class StateStore:
    """Load and atomically save an AgentState at `path` (no file: a fresh state)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> AgentState:
        try:
            with self.path.open(encoding="utf-8") as fh:
                return AgentState.from_json(json.load(fh))
        except FileNotFoundError:
            return AgentState()

    def save(self, state: AgentState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(state.to_json(), fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class MemoryStore(StateStore):
    """A store that keeps a JSON copy in memory (tests, and agents that need no restart safety)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] | None = None

    def load(self) -> AgentState:
        return AgentState.from_json(json.loads(json.dumps(self.data))) if self.data else AgentState()

    def save(self, state: AgentState) -> None:
        self.data = json.loads(json.dumps(state.to_json()))
