"""Agent heartbeat benchmark: `python -m bench.agent_heartbeat --nodes 200 --beats 20`.

Creates `--nodes` nodes with agent tokens in the configured database (DATABASE_URL; use a dedicated
one), registers each through the agent API, then sends `--beats` heartbeats per node (round robin,
each with one usage report of an active lease) through the whole Django stack in-process (URL
routing, node-token auth, serializers, the heartbeat service, metering). Prints the queries per
heartbeat and latency percentiles and, last, `heartbeats_per_s=…`. The bench rows are deleted
afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

from bench._setup import setup

setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from billing.models import UsageRecord  # noqa: E402
from broker.models import Job, JobEvent, JobState, Lease, LeaseState  # noqa: E402
from common.tokens import token_generate, token_hash  # noqa: E402
from marketplace.models import Customer, GPUModel, Node, NodeHeartbeat, NodeUptime, Provider  # noqa: E402

PREFIX = "bench-agent-"


def _cleanup() -> None:
    nodes = Node.objects.filter(name__startswith=PREFIX)
    node_ids = list(nodes.values_list("pk", flat=True))
    UsageRecord.objects.filter(node_id__in=node_ids).delete()
    jobs = list(Lease.objects.filter(node_id__in=node_ids).values_list("job_id", flat=True))
    Lease.objects.filter(node_id__in=node_ids).delete()
    JobEvent.objects.filter(job_id__in=jobs).delete()
    Job.objects.filter(pk__in=jobs).delete()
    NodeHeartbeat.objects.filter(node_id__in=node_ids).delete()
    NodeUptime.objects.filter(node_id__in=node_ids).delete()
    nodes.delete()
    Customer.objects.filter(user__username__startswith=PREFIX).delete()
    Provider.objects.filter(user__username__startswith=PREFIX).delete()
    User.objects.filter(username__startswith=PREFIX).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--beats", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--show-queries", action="store_true", help="print the SQL of one steady-state heartbeat")
    args = parser.parse_args()
    _cleanup()
    gpu_model = GPUModel.objects.get(slug="rtx-4090")
    provider = Provider.objects.create(
        user=User.objects.create(username=f"{PREFIX}provider"), company="Bench", contact_name="B", country="DE"
    )
    customer = Customer.objects.create(user=User.objects.create(username=f"{PREFIX}customer"))
    now = timezone.now()
    tokens: list[tuple[Node, str, int]] = []
    for i in range(args.nodes):
        raw = token_generate(prefix="rsn")
        node = Node.objects.create(
            provider=provider,
            name=f"{PREFIX}{i}",
            region="eu",
            country="DE",
            gpu_model=gpu_model,
            gpu_count=2,
            token_hash=token_hash(raw=raw),
            token_prefix=raw[:12],
        )
        job = Job.objects.create(
            customer=customer, name="bench", gpu_count=2, image="x", duration_seconds=3600, state=JobState.RUNNING
        )
        lease = Lease.objects.create(
            job=job,
            node=node,
            gpu_slots=[0, 1],
            gpu_count=2,
            price_micros=400_000,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=2),
            state=LeaseState.ACTIVE,
        )
        tokens.append((node, raw, lease.pk))
    client = Client()
    register = {
        "gpus": [{"index": g, "name": "NVIDIA GeForce RTX 4090", "vram_gb": 24.0} for g in range(2)],
        "driver_version": "550.54",
        "cpu_cores": 16,
        "ram_gb": 64,
        "disk_gb": 1000,
        "benchmark": {"tflops": 150.0, "mem_bandwidth_gbs": 900.0},
        "agent_version": "bench",
    }
    for _, raw, _ in tokens:
        response = client.post(
            "/api/v1/agent/register", register, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
        )
        assert response.status_code == 200, response.content
    latencies: list[float] = []
    query_counts: list[int] = []
    started = time.perf_counter()
    for beat in range(1, args.beats + 1):
        for _node, raw, lease_id in tokens:
            end = timezone.now()
            body = {
                "seq": beat,
                "status": "ok",
                "gpus": [{"index": 0, "utilisation": 0.9, "temperature_c": 70}],
                "leases": [
                    {
                        "lease_id": lease_id,
                        "seq": beat,
                        "gpu_seconds": 30,
                        "utilisation": 0.9,
                        "interval_start": (end - timedelta(seconds=15)).isoformat(),
                        "interval_end": end.isoformat(),
                        "state": "running",
                    }
                ],
            }
            connection.queries_log.clear()
            t0 = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                response = client.post(
                    "/api/v1/agent/heartbeat", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
                )
            latencies.append(time.perf_counter() - t0)
            query_counts.append(len(queries))
            if args.show_queries and beat == 2 and len(query_counts) == len(tokens) + 1:
                print("\n".join(q["sql"][:160] for q in queries.captured_queries))
            assert response.status_code == 200, response.content
    elapsed = time.perf_counter() - started
    total = len(latencies)
    latencies.sort()
    records = UsageRecord.objects.filter(node_id__in=[n.pk for n, _, _ in tokens]).count()
    print(f"database={connection.vendor} nodes={args.nodes} heartbeats={total} usage_records={records}")
    print(
        f"queries_per_heartbeat median={statistics.median(query_counts)} max={max(query_counts)} "
        f"p50_ms={latencies[total // 2] * 1000:.2f} p99_ms={latencies[int(total * 0.99) - 1] * 1000:.2f}"
    )
    if not args.keep:
        _cleanup()
    print(f"heartbeats_per_s={total / elapsed:.0f}")


if __name__ == "__main__":
    main()
