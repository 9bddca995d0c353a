"""Simulated node agents: the real `rigshift_agent` Runner (simulate mode) talking to the real agent API views
in-process (django.test.Client), so every register, heartbeat and lease fetch takes the production code path:
URL routing, node-token authentication, throttling, serializers, views, services."""

from __future__ import annotations

import json as jsonlib
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import requests
from django.test import Client
from rigshift_agent.detect import simulate, simulated_benchmark, simulated_challenge_tflops
from rigshift_agent.executor import SimulatedExecutor, parse_time
from rigshift_agent.runner import Runner
from rigshift_agent.state import MemoryStore
from rigshift_client import ApiClient

from simulator.clock import SimClock

SERVER = "http://simulator.invalid"


class _Response:
    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content
        self.text = content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class InProcessSession:
    """The slice of `requests.Session` that ApiClient uses, served by Django's test client in this process."""

    def __init__(self) -> None:
        self.client = Client(raise_request_exception=True)
        self.requests = 0

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> _Response:
        parts = urlsplit(url)
        path = parts.path + (f"?{urlencode(params)}" if params else "")
        self.requests += 1
        body = jsonlib.dumps(json) if json is not None else ""
        response = self.client.generic(method, path, body, content_type="application/json", headers=dict(headers or {}))
        return _Response(response.status_code, response.content)


class SimAgent:
    """One node's agent. `step()` is one round of the real Runner (register, poll, heartbeat, sync leases)."""

    def __init__(self, *, node_id: int, name: str, token: str, profile: str, clock: SimClock, interval_s: int) -> None:
        self.node_id = node_id
        self.name = name
        self.profile = profile
        self.clock = clock
        self.session = InProcessSession()
        self.runner = Runner(
            client=ApiClient(server=SERVER, token=token, session=cast(requests.Session, self.session)),
            hardware=simulate(profile),
            store=MemoryStore(),
            executor=SimulatedExecutor(clock=clock.epoch),
            benchmark=simulated_benchmark(profile),
            clock=clock.epoch,
            interval=float(interval_s),
            name=name,
            simulated_tflops=simulated_challenge_tflops(profile),
        )
        self.interval_s = interval_s
        self.next_step_at = 0.0
        self.down_until: float | None = None
        self.steps = 0

    @property
    def down(self) -> bool:
        return self.down_until is not None

    def step(self, *, sync: bool = True) -> None:
        """One Runner round. With `sync=False` the lease fetch is left out: the simulator knows there is nothing
        new for this node (no lease to start or stop), as a push notification would tell a real agent."""
        runner = self.runner
        if sync or not runner.registered:
            delay = runner.step()
        else:
            runner.poll()
            runner.heartbeat()
            delay = runner.interval
        self.steps += 1
        self.next_step_at = self.clock.epoch() + delay

    def running_lease_ids(self) -> set[int]:
        return {int(k) for k, rec in self.runner.state.leases.items() if rec.run_ended is None and k.isdigit()}

    def knows(self, lease_id: int) -> bool:
        key = str(lease_id)
        return key in self.runner.state.leases or key in self.runner.state.finished

    def workload_ended(self) -> bool:
        """A running workload reached its lease end: the agent wakes to report it (the real one polls)."""
        now = self.clock.epoch()
        for rec in self.runner.state.leases.values():
            if rec.running and rec.ends_at and parse_time(rec.ends_at) <= now:
                return True
        return False

    def crash(self, *, until: float) -> None:
        """Power loss: running workloads die and the unreported usage since the last heartbeat is lost."""
        state = self.runner.state
        for lease_id in list(state.leases):
            state.mark_finished(lease_id)
        state.pending = None
        self.runner.store.save(state)
        self.runner.registered = False
        self.down_until = until

    def recover(self) -> None:
        self.down_until = None
        self.next_step_at = 0.0  # registers again at once
