"""Locust scenario: customers searching offers and booking, node agents heartbeating, providers browsing.

Run through `python -m bench.load` (which seeds the database, starts gunicorn and a Celery worker and
writes the credentials file), or by hand against a running server:

    RIGSHIFT_LOAD_CREDENTIALS=creds.json locust -f bench/locustfile.py --headless -H http://127.0.0.1:8001 ...

The credentials file (JSON) holds `customers` (API tokens of funded customers), `providers` (API tokens)
and `nodes` (agent tokens of listed nodes). Each user class paces itself with `constant_throughput`, so the
offered load is users × rate whatever the latency: RIGSHIFT_LOAD_RPS (default 200) split by WEIGHTS.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from typing import Any

from locust import FastHttpUser, constant_throughput, task

CREDENTIALS: dict[str, list[str]] = json.loads(
    open(os.environ.get("RIGSHIFT_LOAD_CREDENTIALS", "var/load-credentials.json")).read()  # noqa: SIM115
)
TOTAL_RPS = float(os.environ.get("RIGSHIFT_LOAD_RPS", "200"))
PER_USER_RPS = 2.0
# Share of the request rate per class: customers (search + book), agents (heartbeat), providers (node list).
WEIGHTS = {"customer": 0.45, "agent": 0.45, "provider": 0.10}

# Heartbeat sequence numbers must be unique per node for its lifetime: start above anything a previous run
# sent (milliseconds since the epoch) and count up per node.
_SEQ_BASE = int(time.time() * 1000)
_seq = {token: itertools.count(_SEQ_BASE) for token in CREDENTIALS["nodes"]}
_node_cycle = itertools.cycle(CREDENTIALS["nodes"])
_customer_cycle = itertools.cycle(CREDENTIALS["customers"])
_provider_cycle = itertools.cycle(CREDENTIALS["providers"])

SEARCHES = (
    "gpu_ram>=24 num_gpus>=1",
    "gpu_ram>=40 region in [eu,us] verified==true",
    "num_gpus>=4 reliability>=0.95",
    "gpu_ram>=80",
    "",
)
REGIONS: tuple[list[str], ...] = (["eu"], ["us"], ["eu", "us"], [])


def users_for(share: float) -> int:
    return max(1, round(TOTAL_RPS * share / PER_USER_RPS))


class Customer(FastHttpUser):
    """Searches offers, then books a small job (one GPU, six minutes, a low price cap: a few cents in escrow)."""

    fixed_count = users_for(WEIGHTS["customer"])
    wait_time = constant_throughput(PER_USER_RPS)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {next(_customer_cycle)}", "Accept": "application/json"}

    @task(1)
    def search(self) -> None:
        self.client.get(
            "/api/v1/offers/",
            params={"q": random.choice(SEARCHES), "limit": "20"},
            headers=self.headers,
            name="offers search",
        )

    @task(1)
    def book(self) -> None:
        body: dict[str, Any] = {
            "image": "ghcr.io/rigshift/load:latest",
            "gpu_count": 1,
            "min_gpu_ram": "16",
            "duration_hours": "0.1",
            "max_price": "0.60",
            "regions": random.choice(REGIONS),
            "verified_only": True,
        }
        with self.client.post(
            "/api/v1/jobs/", json=body, headers=self.headers, name="job book", catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")


class Agent(FastHttpUser):
    """A node agent heartbeating (any listed node; the sequence number is unique per node)."""

    fixed_count = users_for(WEIGHTS["agent"])
    wait_time = constant_throughput(PER_USER_RPS)

    @task
    def heartbeat(self) -> None:
        token = next(_node_cycle)
        body = {
            "seq": next(_seq[token]),
            "status": "ok",
            "gpus": [{"index": 0, "utilisation": round(random.random(), 2), "temperature_c": 65}],
            "leases": [],
        }
        with self.client.post(
            "/api/v1/agent/heartbeat",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            name="agent heartbeat",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or not response.json().get("accepted"):
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")


class ProviderUser(FastHttpUser):
    """A provider browsing its node list."""

    fixed_count = users_for(WEIGHTS["provider"])
    wait_time = constant_throughput(PER_USER_RPS)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {next(_provider_cycle)}", "Accept": "application/json"}

    @task
    def nodes(self) -> None:
        self.client.get("/api/v1/nodes/", headers=self.headers, name="provider nodes")
