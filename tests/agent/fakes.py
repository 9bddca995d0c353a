"""A fake agent API (the contract's semantics, in memory) and a settable clock for runner tests."""

import copy
from collections import defaultdict
from typing import Any

import requests
from rigshift_agent.runner import iso
from rigshift_client import ApiError


class Crash(Exception):
    """The agent process "dies" here (the test then discards the Runner and starts a new one)."""


class Clock:
    def __init__(self, start: int = 1_800_000_000) -> None:
        self.now = start

    def __call__(self) -> float:
        return float(self.now)

    def advance(self, seconds: int) -> None:
        self.now += seconds


class FakeServer:
    """Dedups heartbeats by node seq; records each (lease, seq) usage report once; can fail or "crash" the agent."""

    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.by_seq: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.start: list[dict[str, Any]] = []
        self.stop: list[dict[str, Any]] = []
        self.registrations: list[dict[str, Any]] = []
        self.fail_next = 0
        self.error_status: int | None = None
        self.crash_before_send = False
        self.crash_after_send = False

    # the client interface the runner uses
    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        if self.fail_next:
            self.fail_next -= 1
            if path.endswith("/heartbeat"):
                self.attempts.append(copy.deepcopy(json))
            raise requests.ConnectionError("connection refused")
        if self.error_status is not None:
            raise ApiError(self.error_status, "refused")
        if path.endswith("/register"):
            self.registrations.append(json)
            return {"node_id": 1, "verified": True, "hardware_mismatch": "", "heartbeat_interval_s": 15}
        assert path.endswith("/heartbeat")
        if self.crash_before_send:
            self.crash_before_send = False
            raise Crash("killed before the request left")
        self.attempts.append(copy.deepcopy(json))
        seq = json["seq"]
        duplicate = seq in self.by_seq
        if duplicate:
            assert self.by_seq[seq] == json, "a resent heartbeat must be identical"
        else:
            assert all(seq > s for s in self.by_seq), "node seq must increase"
            self.by_seq[seq] = copy.deepcopy(json)
            for report in json["leases"]:
                lease_reports = self.usage[str(report["lease_id"])]
                assert report["seq"] not in lease_reports, "a lease seq is never reused"
                lease_reports[report["seq"]] = report
        if self.crash_after_send:
            self.crash_after_send = False
            raise Crash("killed after the server applied it, before the acknowledgement")
        max_seq = max(self.by_seq) if duplicate else None
        return {"accepted": True, "duplicate": duplicate, "next_heartbeat_s": 15, "max_seq": max_seq}

    def get(self, path: str, **kwargs: Any) -> Any:
        if self.fail_next:
            self.fail_next -= 1
            raise requests.ConnectionError("connection refused")
        assert path.endswith("/leases")
        return {"start": copy.deepcopy(self.start), "stop": copy.deepcopy(self.stop)}

    # helpers
    def total(self, lease_id: int) -> int:
        return sum(r["gpu_seconds"] for r in self.usage[str(lease_id)].values())

    def lease_seqs(self, lease_id: int) -> list[int]:
        return sorted(self.usage[str(lease_id)])

    def offer(self, lease_id: int, *, start: int, end: int, gpus: list[int], env: dict[str, str] | None = None) -> None:
        self.start.append(
            {
                "lease_id": lease_id,
                "job_id": 100 + lease_id,
                "image": "pytorch/pytorch:2.3.0-cuda12.1",
                "command": "python train.py",
                "env": env or {},
                "ports": [],
                "gpu_slots": gpus,
                "starts_at": iso(start),
                "ends_at": iso(end),
                "state": "reserved",
            }
        )
