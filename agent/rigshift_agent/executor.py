"""Running a lease's workload: a Docker container with its GPUs, or a simulated run.

Both keep running when the agent restarts (a detached container; a simulated run defined by the lease's
times), so after a restart the agent asks the executor where the workload is (`status`) and reads its log
from where it stopped (`logs` with a cursor kept in the lease record).

A workload goes through phases `pulling → starting → running → exited`; when it exits the executor says
with which code and why (`exited`, `oom`, `image_pull_failed`, `start_failed`; the runner adds `stopped`
when the platform stops it and `lease_ended` when the lease's period ran out).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rigshift_agent.state import LeaseRecord

SIM_EXIT_ENV = "RIGSHIFT_SIM_EXIT_AFTER_S"  # a simulated workload that finishes before its lease ends
SIM_EXIT_CODE_ENV = "RIGSHIFT_SIM_EXIT_CODE"  # …with this exit code (default 0)
SIM_PULL_FAIL_ENV = "RIGSHIFT_SIM_PULL_FAIL"  # "1": the simulated image pull fails
SIM_LOG_EVERY_S = 5  # a simulated workload prints a line this often
SIM_EXIT_DEFAULT_AFTER_S = 20  # a command ending in `exit N` exits this long after it started
_TRAILING_EXIT = re.compile(r"(?:^|[;&|\n]\s*)exit\s+(\d{1,3})\s*$")

PULLING, STARTING, RUNNING, EXITED = "pulling", "starting", "running", "exited"
REASONS = ("exited", "oom", "image_pull_failed", "start_failed", "stopped", "lease_ended")


def parse_time(value: str) -> int:
    """ISO 8601 → epoch seconds (accepts a trailing Z)."""
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


@dataclass(frozen=True)
class WorkloadStatus:
    phase: str  # pulling | starting | running | exited
    started_at: int | None = None  # epoch seconds it began running
    ended_at: int | None = None  # epoch seconds it exited
    exit_code: int | None = None
    reason: str = ""  # when exited: one of REASONS
    detail: str = ""  # words for a person (the pull error, …)


@dataclass(frozen=True)
class LogLine:
    at: int  # epoch seconds
    stream: str  # stdout | stderr
    text: str


class Executor(Protocol):
    name: str

    def start(self, lease: LeaseRecord) -> str:
        """Begin the workload (pull, create, start: may return before it runs); returns a handle."""
        ...

    def status(self, lease: LeaseRecord) -> WorkloadStatus:
        """Where the workload is now."""
        ...

    def logs(self, lease: LeaseRecord, *, limit: int) -> list[LogLine]:
        """At most `limit` log lines after `lease.log_cursor`, oldest first; advances `lease.log_cursor`."""
        ...

    def stop(self, lease: LeaseRecord) -> None:
        """Stop the workload and remove everything of it (container, network)."""
        ...


def command_exit_code(command: str) -> int | None:
    """The code a command that ends with `exit N` asks for (the simulated executor honours it)."""
    found = _TRAILING_EXIT.search(command.strip())
    return int(found.group(1)) % 256 if found else None


class SimulatedExecutor:
    """A workload that behaves like a container from the outside, with no container.

    It pulls for `pull_s`, starts for `start_s`, then runs until its lease ends (exit code 0), or until
    RIGSHIFT_SIM_EXIT_AFTER_S with RIGSHIFT_SIM_EXIT_CODE, or — for a command ending in `exit N` — exits
    N after SIM_EXIT_DEFAULT_AFTER_S. Its log (the command, the image and GPUs, a line every
    SIM_LOG_EVERY_S, the exit) is a function of the lease's times, so a restarted agent reads on from its
    cursor and neither loses nor repeats a line.
    """

    name = "simulated"

    def __init__(self, *, clock: Callable[[], float], pull_s: int = 0, start_s: int = 0) -> None:
        self.clock = clock
        self.pull_s = pull_s
        self.start_s = start_s

    def start(self, lease: LeaseRecord) -> str:
        return f"sim-{lease.lease_id}"

    def _exit_plan(self, lease: LeaseRecord, running_at: int) -> tuple[int, int]:
        """(the moment it exits, its code)."""
        end = parse_time(lease.ends_at) if lease.ends_at else 2**62
        code = 0
        after = lease.env.get(SIM_EXIT_ENV, "")
        asked = lease.env.get(SIM_EXIT_CODE_ENV, "")
        from_command = command_exit_code(lease.command)
        if asked.lstrip("-").isdigit():
            code = int(asked)
        elif from_command is not None:
            code = from_command
            after = after or str(SIM_EXIT_DEFAULT_AFTER_S)
        if after.isdigit():
            return min(end, running_at + int(after)), code
        return end, code

    def status(self, lease: LeaseRecord) -> WorkloadStatus:
        now = int(self.clock())
        launched = lease.launched_at if lease.launched_at is not None else now
        if lease.env.get(SIM_PULL_FAIL_ENV) == "1":
            if now < launched + self.pull_s:
                return WorkloadStatus(PULLING)
            detail = f"pull access denied for {lease.image}"
            return WorkloadStatus(EXITED, ended_at=launched + self.pull_s, reason="image_pull_failed", detail=detail)
        if now < launched + self.pull_s:
            return WorkloadStatus(PULLING)
        running_at = launched + self.pull_s + self.start_s
        if now < running_at:
            return WorkloadStatus(STARTING)
        end, code = self._exit_plan(lease, running_at)
        if now >= end:
            return WorkloadStatus(EXITED, started_at=running_at, ended_at=end, exit_code=code, reason="exited")
        return WorkloadStatus(RUNNING, started_at=running_at)

    def _line(self, lease: LeaseRecord, index: int, running_at: int, end: int, code: int) -> LogLine | None:
        """Line `index` of the simulated log, or None when it is not printed (yet, or ever)."""
        ticks = max(0, (end - running_at - 1) // SIM_LOG_EVERY_S)
        slots = ", ".join(str(s) for s in lease.gpu_slots) or "0"
        if index == 0:
            return LogLine(running_at, "stdout", f"$ {lease.command or '(image default command)'}")
        if index == 1:
            return LogLine(running_at, "stdout", f"[simulated] {lease.image} on GPU(s) {slots}")
        if 2 <= index < 2 + ticks:
            step = index - 1
            at = running_at + step * SIM_LOG_EVERY_S
            if step % 10 == 0:
                return LogLine(at, "stderr", f"warning: step {step} took longer than expected")
            return LogLine(at, "stdout", f"step {step}: loss={2.0 / (1 + step):.4f}")
        if index == 2 + ticks:
            return LogLine(end, "stdout" if code == 0 else "stderr", f"exited with code {code}")
        return None

    def logs(self, lease: LeaseRecord, *, limit: int) -> list[LogLine]:
        status = self.status(lease)
        if status.started_at is None:
            return []
        now = int(self.clock())
        end, code = self._exit_plan(lease, status.started_at)
        if lease.run_ended is not None and lease.run_ended < end:  # stopped early: no exit line of its own
            end, code = lease.run_ended, -1
        cursor = int(lease.log_cursor or 0)
        out: list[LogLine] = []
        while len(out) < limit:
            line = self._line(lease, cursor, status.started_at, end, code)
            if line is None or line.at > now or (code == -1 and line.text.startswith("exited with code")):
                break
            out.append(line)
            cursor += 1
        lease.log_cursor = str(cursor)
        return out

    def stop(self, lease: LeaseRecord) -> None:
        return None


def describe(lease: LeaseRecord) -> str:
    return f"lease {lease.lease_id}: {lease.image} {shlex.quote(lease.command) if lease.command else ''}".strip()
