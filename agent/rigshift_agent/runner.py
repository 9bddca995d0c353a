"""The agent's loop: register, heartbeat with per-lease usage, fetch leases, start and stop them.

Exactly-once usage, across restarts and network errors:

* Usage of a lease is measured in whole seconds between `reported_until` (where the previous report ended)
  and now (or the moment the workload ended); each report carries the next per-lease `seq`.
* A heartbeat is built, then the state (new sequence numbers, advanced `reported_until`, the heartbeat
  itself as `pending`) is saved, and only then sent. Until the server acknowledges it, the SAME heartbeat is
  resent (same node seq, same lease reports), so the server can drop a duplicate.
* A crash before the save loses nothing (the usage is measured again from `reported_until`); a crash after
  it resends the pending heartbeat on restart. Nothing is counted twice.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
from rigshift_client import ApiClient, ApiError

from rigshift_agent import __version__
from rigshift_agent.challenge import ChallengeSpec, solve
from rigshift_agent.detect import Hardware
from rigshift_agent.executor import Executor, parse_time
from rigshift_agent.ports import ports_unbindable
from rigshift_agent.state import LeaseRecord, StateStore

log = logging.getLogger("rigshift_agent")

REGISTER = "/api/v1/agent/register"
HEARTBEAT = "/api/v1/agent/heartbeat"
LEASES = "/api/v1/agent/leases"
CHALLENGE = "/api/v1/agent/challenge"
CHALLENGE_ANSWER = "/api/v1/agent/challenge/answer"
CHALLENGE_REVEAL = "/api/v1/agent/challenge/reveal"
REJECTED = {400, 409, 413, 422}
LOG_LINES_PER_HEARTBEAT = 200  # the server accepts at most 500; a long log goes out over several heartbeats
MAX_LOG_LINE_CHARS = 2000
MEMORY_SHARE = 0.9  # of the node's RAM, shared out by GPUs: the rest stays for the host
DEFAULT_PORT_RANGE = (40000, 40999)  # the server will never accept this heartbeat as it is


class AgentFatal(Exception):
    """The server refuses this agent (a wrong or revoked token): retrying cannot help."""


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _wire_id(lease_id: str) -> int | str:
    return int(lease_id) if lease_id.isdigit() else lease_id


GpuSampler = Callable[[set[int]], list[dict[str, Any]]]


def simulated_sampler(hardware: Hardware) -> GpuSampler:
    """Busy GPUs run at ~92% and warm up; idle ones sit at 0% and 38 °C."""

    def sample(busy: set[int]) -> list[dict[str, Any]]:
        return [
            {"index": g.index, "utilisation": 0.92, "temperature_c": 71}
            if g.index in busy
            else {"index": g.index, "utilisation": 0.0, "temperature_c": 38}
            for g in hardware.gpus
        ]

    return sample


class Runner:
    def __init__(
        self,
        *,
        client: ApiClient,
        hardware: Hardware,
        store: StateStore,
        executor: Executor,
        benchmark: dict[str, Any] | None = None,
        clock: Callable[[], float],
        sampler: GpuSampler | None = None,
        interval: float | None = None,
        max_backoff: float = 300.0,
        name: str = "agent",
        simulated_tflops: float | None = None,
        port_range: tuple[int, int] | None = None,
        log_lines_per_heartbeat: int = LOG_LINES_PER_HEARTBEAT,
        check_ports: bool = False,
    ) -> None:
        self.check_ports = check_ports
        self.port_range = port_range or DEFAULT_PORT_RANGE
        self.log_lines_per_heartbeat = log_lines_per_heartbeat
        self.client = client
        self.hardware = hardware
        self.store = store
        self.executor = executor
        self.benchmark = benchmark or {"tflops": None, "mem_bandwidth_gbs": None}
        self.clock = clock
        self.sampler = sampler or simulated_sampler(hardware)
        self.interval = interval or 15.0
        self.fixed_interval = interval is not None
        self.max_backoff = max_backoff
        self.name = name
        self.simulated_tflops = simulated_tflops  # simulate mode: the challenge's reported time at this speed
        self.last_challenge: dict[str, Any] = {}
        self.state = store.load()
        self.registered = False
        self.failures = 0
        self.last_register: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ steps
    def register(self) -> dict[str, Any]:
        hw = self.hardware
        payload = {
            "gpus": [g.report() for g in hw.gpus],
            "driver_version": hw.driver_version,
            "cuda_version": hw.cuda_version,
            "cpu_cores": hw.cpu_cores,
            "ram_gb": hw.ram_gb,
            "disk_gb": hw.disk_gb,
            "inet_down_mbps": hw.inet_down_mbps,
            "inet_up_mbps": hw.inet_up_mbps,
            "benchmark": self.benchmark,
            "agent_version": __version__,
        }
        body = self.client.post(REGISTER, json=payload) or {}
        self.last_register = body
        self.state.node_id = body.get("node_id", self.state.node_id)
        if not self.fixed_interval and body.get("heartbeat_interval_s"):
            self.interval = float(body["heartbeat_interval_s"])
        if body.get("hardware_mismatch"):
            log.warning("%s: the server reports a hardware mismatch: %s", self.name, body["hardware_mismatch"])
        if body.get("benchmark_flag"):
            log.warning("%s: benchmark flagged: %s", self.name, body["benchmark_flag"])
        port_range = body.get("port_range")
        if isinstance(port_range, list) and len(port_range) == 2 and all(isinstance(p, int) for p in port_range):
            self.port_range = (int(port_range[0]), int(port_range[1]))
            if self.check_ports:
                unbound = ports_unbindable(self.port_range)
                if unbound:
                    log.warning("%s: cannot bind host ports %s: %s", self.name, self.port_range, unbound)
        self.store.save(self.state)
        self.registered = True
        self.answer_challenge(body)
        return body

    def answer_challenge(self, body: dict[str, Any]) -> dict[str, Any]:
        """When the server says a compute challenge waits: fetch it, compute, commit, reveal the rows it asks for."""
        if not body.get("challenge_pending"):
            return {}
        try:
            data = (self.client.post(CHALLENGE, json={}) or {}).get("challenge")
            if not data:
                return {}
            spec = ChallengeSpec.from_json(data)
            solution = solve(spec, simulated_tflops=self.simulated_tflops)
            commit = {
                "challenge_id": spec.challenge_id,
                "digest": solution.digest,
                "compute_s": solution.compute_s,
                "backend": solution.backend[:60],
                "gave_up": solution.gave_up,
            }
            outcome = self.client.post(CHALLENGE_ANSWER, json=commit) or {}
            if outcome.get("state") == "answered" and outcome.get("rows"):
                reveal = {"challenge_id": spec.challenge_id, "rows": solution.reveal(spec, outcome["rows"])}
                outcome = self.client.post(CHALLENGE_REVEAL, json=reveal) or {}
        except ApiError as exc:
            if exc.status not in (*REJECTED, 404):
                raise
            log.error("%s: compute challenge refused (%s): %s", self.name, exc.status, exc.message)
            return {}
        self.last_challenge = outcome
        if outcome.get("state") == "passed":
            log.info("%s: compute challenge passed: %s TFLOPS per GPU", self.name, outcome.get("measured_tflops"))
        else:
            log.warning("%s: compute challenge %s: %s", self.name, outcome.get("state"), outcome.get("verdict"))
        return outcome

    def poll(self) -> None:
        """Follow each launched workload through its phases; stop those whose lease is over."""
        now = int(self.clock())
        changed = False
        for rec in self.state.leases.values():
            if not rec.live:
                continue
            changed |= self._advance(rec, now)
            lease_end = parse_time(rec.ends_at) if rec.ends_at else None
            if rec.live and lease_end is not None and now >= lease_end:
                self.executor.stop(rec)
                self._ended(rec, at=lease_end, now=now, reason="lease_ended", detail="lease ended")
                changed = True
        if changed:
            self.store.save(self.state)

    def _set_phase(self, rec: LeaseRecord, phase: str, at: int) -> None:
        if rec.phase == phase:
            return
        rec.phase = phase
        event: dict[str, Any] = {"lease_id": _wire_id(rec.lease_id), "phase": phase, "at": iso(at)}
        if phase == "running" and rec.port_map:
            event["ports"] = rec.port_map
        rec.events.append(event)

    def _advance(self, rec: LeaseRecord, now: int) -> bool:
        """Ask the executor where the workload is; record a new phase, its start or its exit. True if changed."""
        before = (rec.phase, rec.run_started, rec.run_ended)
        status = self.executor.status(rec)
        launched = rec.launched_at if rec.launched_at is not None else now
        if status.phase in ("starting", "running", "exited") and rec.phase in ("", "pulling"):
            self._set_phase(rec, "starting", min(now, max(launched, status.started_at or now)))
        if status.phase in ("running", "exited") and status.started_at is not None and rec.run_started is None:
            rec.run_started = min(now, max(launched, status.started_at))
            self._set_phase(rec, "running", rec.run_started)
        elif status.phase == "running" and rec.run_started is None:
            rec.run_started = now
            self._set_phase(rec, "running", now)
        if status.phase == "exited":
            at = status.ended_at if status.ended_at is not None else now
            self._ended(rec, at=at, now=now, reason=status.reason or "exited", detail=status.detail)
            rec.exit_code = status.exit_code
        return before != (rec.phase, rec.run_started, rec.run_ended)

    def _ended(self, rec: LeaseRecord, *, at: int, now: int, reason: str, detail: str = "") -> None:
        if rec.run_started is None:  # never ran (pull failed, stopped while pulling): no usage
            rec.run_started = min(now, max(rec.launched_at or now, at))
        rec.run_ended = max(rec.run_started, min(at, now))
        rec.exit_reason = rec.exit_reason or reason
        rec.stop_reason = rec.stop_reason or detail or reason
        rec.phase = "exited"
        log.info("%s: lease %s ended (%s)", self.name, rec.lease_id, rec.stop_reason)

    def _read_logs(self, budget: int) -> list[dict[str, Any]]:
        """Up to `budget` new log lines over the launched leases, each numbered once (per lease)."""
        lines: list[dict[str, Any]] = []
        for lease_id in sorted(self.state.leases):
            rec = self.state.leases[lease_id]
            if rec.run_started is None or rec.logs_drained or rec.final_reported:
                continue
            room = budget - len(lines)
            if room <= 0:
                break
            got = self.executor.logs(rec, limit=room)
            for line in got:
                rec.log_seq += 1
                text = line.text[:MAX_LOG_LINE_CHARS]
                lines.append(
                    {
                        "lease_id": _wire_id(lease_id),
                        "seq": rec.log_seq,
                        "at": iso(line.at),
                        "stream": line.stream,
                        "text": text,
                    }
                )
            if rec.run_ended is not None and len(got) < room:
                rec.logs_drained = True
        return lines

    def build_heartbeat(self) -> dict[str, Any]:
        now = int(self.clock())
        busy = {slot for rec in self.state.leases.values() if rec.running for slot in rec.gpu_slots}
        gpus = self.sampler(busy)
        util_by_index = {g["index"]: float(g.get("utilisation") or 0.0) for g in gpus}
        reports = []
        logs = self._read_logs(self.log_lines_per_heartbeat)
        events = [event for rec in self.state.leases.values() for event in rec.events]
        for rec in self.state.leases.values():
            rec.events = []
        for lease_id in sorted(self.state.leases):
            rec = self.state.leases[lease_id]
            if rec.run_started is None or rec.final_reported:
                continue
            if rec.run_ended is not None and not rec.logs_drained:
                continue  # the exit is reported with the workload's last lines, in a later heartbeat
            start = rec.reported_until if rec.reported_until is not None else rec.run_started
            end = max(start, rec.run_ended if rec.run_ended is not None else now)
            slots = rec.gpu_slots or [0]
            rec.seq += 1
            rec.reported_until = end
            exited = rec.run_ended is not None
            rec.final_reported = exited
            report: dict[str, Any] = {
                "lease_id": _wire_id(lease_id),
                "seq": rec.seq,
                "gpu_seconds": (end - start) * len(slots),
                "utilisation": round(sum(util_by_index.get(s, 0.0) for s in slots) / len(slots), 3),
                "interval_start": iso(start),
                "interval_end": iso(end),
                "state": "exited" if exited else "running",
            }
            if exited:
                report |= {
                    "exit_code": rec.exit_code,
                    "reason": rec.exit_reason or "exited",
                    "detail": rec.stop_reason[:300],
                }
            reports.append(report)
        self.state.seq += 1
        body: dict[str, Any] = {"seq": self.state.seq, "status": "ok", "gpus": gpus, "leases": reports}
        if events:
            body["events"] = events
        if logs:
            body["logs"] = logs
        return body

    def heartbeat(self) -> dict[str, Any]:
        """Send the pending heartbeat (or build, save, then send a new one) and apply the acknowledgement."""
        if self.state.pending is None:
            self.state.pending = self.build_heartbeat()
            self.store.save(self.state)  # BEFORE sending: see the module docstring
        pending = self.state.pending
        try:
            body = self.client.post(HEARTBEAT, json=pending) or {}
            max_seq = body.get("max_seq")
            if body.get("duplicate") and isinstance(max_seq, int) and max_seq > pending["seq"]:
                # The server has seen higher numbers from this node: this agent lost its state (a new state
                # file), so its seq is not the one the server stored. Renumber above the server's and resend.
                log.warning("%s: server is at seq %d, ours was %d (state lost?)", self.name, max_seq, pending["seq"])
                self.state.seq = max_seq + 1
                pending = self.state.pending = {**pending, "seq": self.state.seq}
                self.store.save(self.state)
                body = self.client.post(HEARTBEAT, json=pending) or {}
        except ApiError as exc:
            if exc.status not in REJECTED:
                raise
            log.error("%s: heartbeat %s rejected (%s), dropped: %s", self.name, pending["seq"], exc.status, exc.message)
            body = {"accepted": False, "duplicate": False}
        for report in pending.get("leases", []):
            if report["state"] == "exited":
                self.state.mark_finished(str(report["lease_id"]))
        self.state.pending = None
        self.store.save(self.state)
        if not self.fixed_interval and body.get("next_heartbeat_s"):
            self.interval = float(body["next_heartbeat_s"])
        self.answer_challenge(body)
        return body

    def sync_leases(self) -> None:
        """Fetch what the server wants run: start new leases when due, stop withdrawn ones."""
        body = self.client.get(LEASES) or {}
        now = int(self.clock())
        for item in body.get("stop", []):
            rec = self.state.leases.get(str(item["lease_id"]))
            if rec is None or rec.run_ended is not None:
                continue
            if rec.live:
                self.executor.stop(rec)
            # never started: reported closed with no usage so the server frees the capacity
            self._ended(
                rec, at=now, now=now, reason="stopped", detail=str(item.get("reason") or "stopped by the server")
            )
            log.info("%s: lease %s stopped: %s", self.name, rec.lease_id, rec.stop_reason)
        for item in body.get("start", []):
            lease_id = str(item["lease_id"])
            if lease_id in self.state.leases or lease_id in self.state.finished:
                continue
            if item.get("ends_at") and parse_time(item["ends_at"]) <= now:
                continue
            self.state.leases[lease_id] = LeaseRecord(
                lease_id=lease_id,
                job_id=str(item.get("job_id", "")),
                image=str(item.get("image", "")),
                command=str(item.get("command") or ""),
                env={str(k): str(v) for k, v in (item.get("env") or {}).items()},
                ports=list(item.get("ports") or []),
                ssh=bool(item.get("ssh")),
                ssh_keys=[str(k) for k in item.get("ssh_keys") or []],
                gpu_slots=[int(s) for s in item.get("gpu_slots") or []],
                starts_at=str(item.get("starts_at") or ""),
                ends_at=str(item.get("ends_at") or ""),
            )
        self._start_due(now)
        self.store.save(self.state)

    def _start_due(self, now: int) -> None:
        for rec in self.state.leases.values():
            if rec.launched_at is not None or (rec.starts_at and parse_time(rec.starts_at) > now):
                continue
            rec.launched_at = now
            self._set_phase(rec, "pulling", now)
            try:
                self._assign(rec)
                rec.handle = self.executor.start(rec)
                log.info("%s: started lease %s on GPUs %s (%s)", self.name, rec.lease_id, rec.gpu_slots, rec.handle)
            except Exception as exc:  # noqa: BLE001 — a workload that cannot start is reported as exited
                self._ended(rec, at=now, now=now, reason="start_failed", detail=f"start failed: {exc}"[:300])
                log.error("%s: lease %s could not start: %s", self.name, rec.lease_id, exc)
                continue
            self._advance(rec, now)

    def _assign(self, rec: LeaseRecord) -> None:
        """The lease's share of the node (CPU, memory) and a host port from the node's range per container port."""
        gpus = max(1, len(self.hardware.gpus))
        share = max(1, len(rec.gpu_slots)) / gpus
        rec.cpus = round(max(1.0, self.hardware.cpu_cores * share), 2)
        rec.memory_gb = round(max(1.0, self.hardware.ram_gb * share * MEMORY_SHARE), 1)
        wanted = [int(p) for p in rec.ports if str(p).isdigit()]
        if rec.ssh and 22 not in wanted:
            wanted.append(22)
        used = {m["host"] for other in self.state.leases.values() if other.live for m in other.port_map}
        low, high = self.port_range
        free = (port for port in range(low, high + 1) if port not in used)
        mapping = []
        for container_port in wanted:
            host = next(free, None)
            if host is None:
                raise RuntimeError(f"no free host port left in {low}-{high}")
            mapping.append({"container": container_port, "host": host, "protocol": "tcp"})
        rec.port_map = mapping

    # ------------------------------------------------------------------------------------------ loop
    def step(self) -> float:
        """One round; returns the seconds to wait before the next (the interval, or a back-off)."""
        try:
            if not self.registered:
                self.register()
            self.poll()
            self.heartbeat()
            self.sync_leases()
        except ApiError as exc:
            if exc.status in (401, 403):
                raise AgentFatal(f"the server refused the node token ({exc.status}): {exc.message}") from exc
            return self._backoff(exc)
        except (requests.RequestException, ValueError) as exc:
            return self._backoff(exc)
        self.failures = 0
        return self.interval

    def _backoff(self, exc: Exception) -> float:
        self.failures += 1
        delay = min(self.max_backoff, 2.0 ** min(self.failures - 1, 16))
        delay *= random.uniform(0.8, 1.2)
        log.warning("%s: server unreachable or failing (%s); retry %d in %.1fs", self.name, exc, self.failures, delay)
        return delay

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            delay = self.step()
            stop.wait(delay)
        self.store.save(self.state)
