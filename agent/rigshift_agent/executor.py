"""Running a lease's workload: a Docker container with its GPUs, or a simulated run.

Both keep running when the agent restarts (a detached container; a simulated run defined by the lease's
times), so after a restart the agent asks the executor whether the workload still runs and when it ended.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from rigshift_agent.state import LeaseRecord

SIM_EXIT_ENV = "RIGSHIFT_SIM_EXIT_AFTER_S"  # a simulated workload that finishes before its lease ends


def parse_time(value: str) -> int:
    """ISO 8601 → epoch seconds (accepts a trailing Z)."""
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


class Executor(Protocol):
    name: str

    def start(self, lease: LeaseRecord) -> str:
        """Start the workload; returns a handle stored in the lease record."""
        ...

    def ended_at(self, lease: LeaseRecord) -> int | None:
        """Epoch seconds the workload ended, or None while it runs."""
        ...

    def stop(self, lease: LeaseRecord) -> None: ...


class SimulatedExecutor:
    """A workload that "runs" from its start until the lease ends (or until RIGSHIFT_SIM_EXIT_AFTER_S)."""

    name = "simulated"

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self.clock = clock

    def start(self, lease: LeaseRecord) -> str:
        return f"sim-{lease.lease_id}"

    def planned_end(self, lease: LeaseRecord) -> int:
        end = parse_time(lease.ends_at) if lease.ends_at else 2**62
        exit_after = lease.env.get(SIM_EXIT_ENV, "")
        if exit_after.isdigit() and lease.run_started is not None:
            end = min(end, lease.run_started + int(exit_after))
        return end

    def ended_at(self, lease: LeaseRecord) -> int | None:
        end = self.planned_end(lease)
        return end if int(self.clock()) >= end else None

    def stop(self, lease: LeaseRecord) -> None:
        return None


class DockerExecutor:
    """`docker run --gpus device=...` per lease; stopped on cancel, preemption or lease end."""

    name = "docker"

    def __init__(self, *, docker: str = "docker") -> None:
        self.docker = docker

    @staticmethod
    def available() -> bool:
        exe = shutil.which("docker")
        if exe is None:
            return False
        try:
            return subprocess.run([exe, "info"], capture_output=True, timeout=10, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def run_args(self, lease: LeaseRecord) -> list[str]:
        devices = ",".join(str(i) for i in lease.gpu_slots)
        args = [self.docker, "run", "-d", "--name", f"rigshift-lease-{lease.lease_id}"]
        args += ["--label", f"rigshift.lease={lease.lease_id}", "--gpus", f'"device={devices}"']
        for key, value in sorted(lease.env.items()):
            args += ["-e", f"{key}={value}"]
        for port in lease.ports:
            args += ["-p", str(port)]
        args.append(lease.image)
        if lease.command:
            args += ["sh", "-c", lease.command]
        return args

    def start(self, lease: LeaseRecord) -> str:
        done = subprocess.run(self.run_args(lease), capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"docker run failed: {done.stderr.strip()[:300]}")
        return done.stdout.strip()

    def ended_at(self, lease: LeaseRecord) -> int | None:
        fmt = "{{.State.Running}}|{{.State.FinishedAt}}"
        done = subprocess.run(
            [self.docker, "inspect", "-f", fmt, lease.handle], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode != 0:  # the container is gone: it ended, we do not know when; count until now
            return lease.run_ended or int(time.time())
        running, _, finished = done.stdout.strip().partition("|")
        if running == "true":
            return None
        try:  # Docker prints nanoseconds; keep the seconds
            return parse_time(finished.split(".")[0] + ("Z" if "." in finished else ""))
        except ValueError:
            return None

    def stop(self, lease: LeaseRecord) -> None:
        for cmd in (["stop", "-t", "10"], ["rm", "-f"]):
            subprocess.run([self.docker, *cmd, lease.handle], capture_output=True, timeout=60, check=False)


def describe(lease: LeaseRecord) -> str:
    return f"lease {lease.lease_id}: {lease.image} {shlex.quote(lease.command) if lease.command else ''}".strip()
