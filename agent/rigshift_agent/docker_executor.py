"""The Docker executor: one container per lease, safe by default.

- no `--privileged`, `no-new-privileges`, the lease's GPUs only (`--gpus "device=2,3"`);
- the lease's share of the node's CPU cores and memory as limits (`--cpus`, `--memory`), a shared-memory
  size PyTorch's data loaders need (`--shm-size`), a process limit;
- its own bridge network (`rigshift-lease-N`), each requested container port published on the host port
  the agent chose from the node's range (`-p 40022:22/tcp`);
- SSH keys as the common convention has them: `PUBLIC_KEY` in the environment and appended to
  `~/.ssh/authorized_keys` before the command runs;
- on lease end the container and its network are removed (`rm -f`, `network rm`): no volume, no name and
  no network of one lease is left for the next.

Pulling, creating and starting run in a background thread so heartbeats go on during a slow pull; after an
agent restart a container that exists is followed from `docker inspect`, one that does not is started again.
Logs are read with `docker logs --timestamps --since`, the cursor being the last timestamp read and how many
lines at that timestamp were already taken, so a restart neither repeats nor loses a line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from rigshift_agent.executor import EXITED, PULLING, RUNNING, STARTING, LogLine, WorkloadStatus, parse_time
from rigshift_agent.state import LeaseRecord

SHM_SIZE = "8g"  # PyTorch DataLoader workers share tensors through /dev/shm (Docker's default is 64 MB)
PIDS_LIMIT = 4096
SSH_SETUP = (
    'if [ -n "$PUBLIC_KEY" ]; then mkdir -p ~/.ssh && chmod 700 ~/.ssh && '
    'printf "%s\\n" "$PUBLIC_KEY" >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys; fi'
)


@dataclass
class _Progress:
    phase: str
    error: str = ""
    reason: str = ""


def _name(lease: LeaseRecord) -> str:
    return f"rigshift-lease-{lease.lease_id}"


def _epoch(value: str) -> int | None:
    """Docker's RFC 3339 with nanoseconds → epoch seconds; None for Docker's zero time."""
    if not value or value.startswith("0001-"):
        return None
    try:
        return parse_time(value.split(".")[0] + "Z" if "." in value else value)
    except ValueError:
        return None


class DockerExecutor:
    name = "docker"

    def __init__(self, *, docker: str = "docker", background: bool = True) -> None:
        self.docker = docker
        self.background = background
        self._progress: dict[str, _Progress] = {}
        self._lock = threading.Lock()

    @staticmethod
    def available(docker: str = "docker") -> bool:
        exe = shutil.which(docker)
        if exe is None:
            return False
        try:
            return subprocess.run([exe, "info"], capture_output=True, timeout=10, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.docker, *args], capture_output=True, text=True, timeout=timeout, check=False)

    # ------------------------------------------------------------------------------------------ start
    def run_args(self, lease: LeaseRecord) -> list[str]:
        """`docker create` arguments (the container is then started with `docker start`)."""
        devices = ",".join(str(i) for i in lease.gpu_slots)
        args = [self.docker, "create", "--name", _name(lease), "--label", f"rigshift.lease={lease.lease_id}"]
        if lease.gpu_slots:
            args += ["--gpus", f'"device={devices}"']
        args += ["--network", _name(lease)]
        args += ["--security-opt", "no-new-privileges", "--pids-limit", str(PIDS_LIMIT), "--shm-size", SHM_SIZE]
        if lease.cpus:
            args += ["--cpus", f"{lease.cpus:g}"]
        if lease.memory_gb:
            args += ["--memory", f"{int(lease.memory_gb * 1024)}m"]
        env = dict(lease.env)
        if lease.ssh_keys:
            env["PUBLIC_KEY"] = "\n".join(lease.ssh_keys)
        for key, value in sorted(env.items()):
            args += ["-e", f"{key}={value}"]
        for port in lease.port_map:
            args += ["-p", f"{port['host']}:{port['container']}/{port.get('protocol', 'tcp')}"]
        args.append(lease.image)
        command = lease.command
        if lease.ssh_keys:
            command = f"{SSH_SETUP}; {command}" if command else f"{SSH_SETUP}; exec sleep infinity"
        if command:
            args += ["sh", "-c", command]
        return args

    def start(self, lease: LeaseRecord) -> str:
        with self._lock:
            self._progress[lease.lease_id] = _Progress(PULLING)
        if self.background:
            threading.Thread(target=self._launch, args=(lease,), daemon=True, name=f"pull-{lease.lease_id}").start()
        else:
            self._launch(lease)
        return _name(lease)

    def _set(self, lease: LeaseRecord, phase: str, error: str = "", reason: str = "") -> None:
        with self._lock:
            self._progress[lease.lease_id] = _Progress(phase, error, reason)

    def _launch(self, lease: LeaseRecord) -> None:
        try:
            self._run("network", "create", "--driver", "bridge", _name(lease))
            pulled = self._run("pull", lease.image, timeout=3600)
            if pulled.returncode != 0:
                self._set(lease, EXITED, pulled.stderr.strip()[:300] or "docker pull failed", "image_pull_failed")
                return
            self._set(lease, STARTING)
            created = self._run(*self.run_args(lease)[1:], timeout=120)
            started = self._run("start", _name(lease), timeout=120) if created.returncode == 0 else created
            if started.returncode != 0:
                self._set(lease, EXITED, started.stderr.strip()[:300] or "docker start failed", "start_failed")
                return
            self._set(lease, RUNNING)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._set(lease, EXITED, str(exc)[:300], "start_failed")

    # ------------------------------------------------------------------------------------------ status
    def status(self, lease: LeaseRecord) -> WorkloadStatus:
        with self._lock:
            progress = self._progress.get(lease.lease_id)
        if progress is not None and progress.phase in (PULLING, STARTING):
            return WorkloadStatus(progress.phase)
        if progress is not None and progress.phase == EXITED:
            return WorkloadStatus(EXITED, reason=progress.reason, detail=progress.error)
        state = self._inspect(lease)
        if state is None:
            if progress is None and lease.phase in ("", PULLING, STARTING):  # an agent restarted mid-pull
                self.start(lease)
                return WorkloadStatus(PULLING)
            return WorkloadStatus(EXITED, reason="exited", detail="the container is gone")
        started = _epoch(str(state.get("StartedAt", "")))
        if state.get("Running"):
            return WorkloadStatus(RUNNING, started_at=started)
        if state.get("Status") == "created":
            return WorkloadStatus(STARTING)
        code = state.get("ExitCode")
        reason = "oom" if state.get("OOMKilled") else "exited"
        return WorkloadStatus(
            EXITED,
            started_at=started,
            ended_at=_epoch(str(state.get("FinishedAt", ""))),
            exit_code=int(code) if isinstance(code, int) else None,
            reason=reason,
            detail=str(state.get("Error") or ("out of memory" if reason == "oom" else "")),
        )

    def _inspect(self, lease: LeaseRecord) -> dict[str, Any] | None:
        done = self._run("inspect", "-f", "{{json .State}}", _name(lease), timeout=30)
        if done.returncode != 0:
            return None
        try:
            state = json.loads(done.stdout.strip() or "null")
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def published_ports(self, lease: LeaseRecord) -> list[dict[str, Any]]:
        """The mapping Docker reports (`docker port`): [{container, host, protocol}]."""
        done = self._run("port", _name(lease), timeout=30)
        mapping = []
        for line in done.stdout.splitlines():  # "22/tcp -> 0.0.0.0:40022"
            left, _, right = line.partition(" -> ")
            port, _, proto = left.strip().partition("/")
            host = right.rsplit(":", 1)[-1].strip()
            if port.isdigit() and host.isdigit():
                item = {"container": int(port), "host": int(host), "protocol": proto or "tcp"}
                if item not in mapping:
                    mapping.append(item)
        return mapping

    # ------------------------------------------------------------------------------------------ logs
    def logs(self, lease: LeaseRecord, *, limit: int) -> list[LogLine]:
        since, _, taken_text = lease.log_cursor.partition("|")
        taken = int(taken_text) if taken_text.isdigit() else 0
        args = ["logs", "--timestamps"] + (["--since", since] if since else []) + [_name(lease)]
        done = self._run(*args, timeout=60)
        if done.returncode != 0:
            return []
        lines = [(ts, "stdout", text) for ts, text in _split(done.stdout)]
        lines += [(ts, "stderr", text) for ts, text in _split(done.stderr)]
        lines.sort(key=lambda item: item[0])
        out: list[LogLine] = []
        cursor_ts, count = since, taken
        for ts, stream, text in lines:
            if since and ts < since:
                continue
            if ts == since and taken > 0:
                taken -= 1
                continue
            if len(out) >= limit:
                break
            out.append(LogLine(_epoch(ts) or 0, stream, text))
            count = count + 1 if ts == cursor_ts else 1
            cursor_ts = ts
        if out:
            lease.log_cursor = f"{cursor_ts}|{count}"
        return out

    # ------------------------------------------------------------------------------------------ stop
    def stop(self, lease: LeaseRecord) -> None:
        self._run("stop", "-t", "10", _name(lease))
        self._run("rm", "-f", _name(lease))
        self._run("network", "rm", _name(lease))
        with self._lock:
            self._progress.pop(lease.lease_id, None)


def _split(output: str) -> list[tuple[str, str]]:
    """`docker logs --timestamps` output → [(RFC 3339 timestamp, text)]."""
    rows = []
    for line in output.splitlines():
        ts, _, text = line.partition(" ")
        if ts[:2].isdigit():
            rows.append((ts, text))
    return rows
