"""Prometheus metrics for `GET /metrics`, all named `rigshift_…`.

Two kinds of numbers, both safe with many web and worker processes on many machines:

- **Request counters** (count, latency histogram, 5xx errors by view): every request adds to a few
  Redis hashes in one pipelined round trip (`HINCRBY`/`HINCRBYFLOAT`), so every gunicorn worker on
  every machine adds to the same totals and any of them can serve the scrape. Without REDIS_URL (the
  single-machine embedded setup) they are kept in process memory: exact for one process, per-process
  otherwise. If Redis is down a request is never failed for metrics: the observation is dropped and
  `rigshift_metrics_dropped_total` says how many.
- **Gauges** (queue depths, pending jobs by age, nodes online by tier, heartbeat lag, settlement
  lag, ledger totals, match rounds) are computed at scrape time with a few aggregate queries, so no
  process has to keep them up to date and they are the same whichever process answers.

Money is reported in integer micro-dollars (`…_micros`), like everywhere else.
"""

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PENDING_AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("lt_1m", 0, 60),
    ("1m_5m", 60, 300),
    ("5m_15m", 300, 900),
    ("15m_1h", 900, 3600),
    ("gt_1h", 3600, None),
)
MATCH_WINDOW = timedelta(minutes=15)
_KEY = "rigshift:metrics:"


def _key(name: str) -> str:
    """Redis key of one counter hash; RIGSHIFT_METRICS_KEY_PREFIX separates deployments (or tests) sharing a Redis."""
    return str(getattr(settings, "RIGSHIFT_METRICS_KEY_PREFIX", _KEY)) + name


_SEP = "\t"


def _bucket_for(seconds: float) -> str:
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


# --- request counters -------------------------------------------------------------------------


class _LocalStore:
    """Per-process counters (no Redis)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.count: dict[str, float] = defaultdict(float)
        self.sums: dict[str, float] = defaultdict(float)
        self.buckets: dict[str, float] = defaultdict(float)
        self.dropped = 0

    def observe(self, *, view: str, method: str, status: int, seconds: float) -> None:
        with self.lock:
            self.count[_SEP.join((view, method, str(status)))] += 1
            self.sums[view] += seconds
            self.buckets[_SEP.join((view, _bucket_for(seconds)))] += 1

    def snapshot(self) -> tuple[dict[str, float], dict[str, float], dict[str, float], int]:
        with self.lock:
            return dict(self.count), dict(self.sums), dict(self.buckets), self.dropped


class _RedisStore:
    """Counters shared by every process through Redis hashes."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self.dropped = 0

    def reset(self) -> None:
        self.client.delete(*(_key(name) for name in ("count", "sum", "bucket", "dropped")))

    def observe(self, *, view: str, method: str, status: int, seconds: float) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hincrby(_key("count"), _SEP.join((view, method, str(status))), 1)
            pipe.hincrbyfloat(_key("sum"), view, seconds)
            pipe.hincrby(_key("bucket"), _SEP.join((view, _bucket_for(seconds))), 1)
            pipe.execute()
        except Exception:  # noqa: BLE001 — metrics never fail a request
            self.dropped += 1

    def snapshot(self) -> tuple[dict[str, float], dict[str, float], dict[str, float], int]:
        pipe = self.client.pipeline(transaction=False)
        for name in ("count", "sum", "bucket"):
            pipe.hgetall(_key(name))
        count, sums, buckets = pipe.execute()

        def decode(raw: dict[bytes, bytes]) -> dict[str, float]:
            return {k.decode(): float(v) for k, v in raw.items()}

        return decode(count), decode(sums), decode(buckets), self.dropped


@lru_cache(maxsize=4)
def _store_for(url: str) -> _LocalStore | _RedisStore:
    return _RedisStore(url) if url else _LocalStore()


def request_store() -> _LocalStore | _RedisStore:
    return _store_for(getattr(settings, "REDIS_URL", "") or "")


def request_observe(*, view: str, method: str, status: int, seconds: float) -> None:
    """Called by `RequestContextMiddleware` once per request."""
    request_store().observe(view=view, method=method, status=status, seconds=seconds)


def request_metrics_reset() -> None:
    """For tests: forget the request counters."""
    request_store().reset()


def _request_families() -> Iterator[Metric]:
    count, sums, buckets, dropped = request_store().snapshot()
    requests = CounterMetricFamily(
        "rigshift_http_requests", "HTTP requests by view, method and status", labels=["view", "method", "status"]
    )
    errors = CounterMetricFamily("rigshift_http_errors", "HTTP 5xx responses by view", labels=["view"])
    error_totals: dict[str, float] = defaultdict(float)
    for key, value in sorted(count.items()):
        view, method, status = key.split(_SEP)
        requests.add_metric([view, method, status], value)
        if status.startswith("5"):
            error_totals[view] += value
    for view, value in sorted(error_totals.items()):
        errors.add_metric([view], value)
    yield requests
    yield errors

    latency = HistogramMetricFamily(
        "rigshift_http_request_duration_seconds", "Request latency by view", labels=["view"]
    )
    per_view: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in buckets.items():
        view, bound = key.split(_SEP)
        per_view[view][bound] = value
    for view in sorted(per_view):
        cumulative = 0.0
        series: list[tuple[str, float]] = []
        for bound in [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]:
            cumulative += per_view[view].get(bound, 0.0)
            series.append((bound, cumulative))
        latency.add_metric([view], series, sum_value=sums.get(view, 0.0))
    yield latency
    yield CounterMetricFamily(
        "rigshift_metrics_dropped", "Request observations lost (metrics store unreachable)", value=dropped
    )


# --- gauges computed from the database and the Celery broker at scrape time --------------------


def celery_queue_names() -> list[str]:
    names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")}
    names.update(getattr(settings, "RIGSHIFT_METRICS_QUEUES", []))
    return sorted(names)


def celery_queue_depths() -> dict[str, int]:
    """Messages waiting per queue: Redis LLEN with REDIS_URL, else files in the filesystem broker's folder."""
    names = celery_queue_names()
    broker_url: str = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if broker_url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(broker_url, socket_timeout=1, socket_connect_timeout=1)
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
        return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))
    folder = Path(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("data_folder_in", ""))
    depths = dict.fromkeys(names, 0)
    if folder.is_dir():
        # kombu's filesystem transport names each message file "<time>_<uuid>.<queue>.msg".
        for entry in os.scandir(folder):
            if entry.name.endswith(".msg"):
                queue = entry.name[: -len(".msg")].rsplit(".", 1)[-1]
                depths[queue] = depths.get(queue, 0) + 1
    return depths


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _db_families() -> Iterator[Metric]:
    from billing.models import Account, UsageRecord, UsageStatus
    from broker.models import Job, JobState, MatchRound
    from marketplace.models import Node, NodeStatus, Tier

    now = timezone.now()

    # Pending jobs by age: one conditional aggregate.
    aggregates: dict[str, Any] = {}
    for label, low, high in PENDING_AGE_BUCKETS:
        cond = Q(created_at__lte=now - timedelta(seconds=low))
        if high is not None:
            cond &= Q(created_at__gt=now - timedelta(seconds=high))
        aggregates[label] = Count("id", filter=cond)
    pending = Job.objects.filter(state=JobState.PENDING).aggregate(**aggregates)
    jobs = GaugeMetricFamily("rigshift_jobs_pending", "Pending jobs by time since booking", labels=["age"])
    for label, _, _ in PENDING_AGE_BUCKETS:
        jobs.add_metric([label], pending[label] or 0)
    yield jobs

    by_state = GaugeMetricFamily("rigshift_jobs", "Jobs by state", labels=["state"])
    state_counts = dict(Job.objects.values_list("state").annotate(n=Count("id")).order_by())
    for state in JobState.values:
        by_state.add_metric([state], state_counts.get(state, 0))
    yield by_state

    # Nodes online by tier (the tier of the node's GPU model).
    online = Node.objects.filter(status=NodeStatus.ONLINE)
    tiers = dict(online.values_list("gpu_model__tier").annotate(n=Count("id")).order_by())
    nodes = GaugeMetricFamily("rigshift_nodes_online", "Online nodes by GPU tier", labels=["tier"])
    for tier in Tier.values:
        nodes.add_metric([tier], tiers.get(tier, 0))
    yield nodes

    # Heartbeat lag of online nodes: now - last heartbeat, as percentiles.
    lags = sorted(
        (now - at).total_seconds()
        for at in online.exclude(last_heartbeat_at=None).values_list("last_heartbeat_at", flat=True)
        if at is not None
    )
    lag = GaugeMetricFamily(
        "rigshift_heartbeat_lag_seconds", "Seconds since the last heartbeat of online nodes", labels=["quantile"]
    )
    for q in (0.5, 0.9, 0.99, 1.0):
        lag.add_metric([str(q)], _percentile(lags, q))
    yield lag

    # Settlement lag: the oldest metered usage not rated yet.
    unsettled = UsageRecord.objects.filter(status=UsageStatus.PENDING).aggregate(
        oldest=Min("received_at"), n=Count("id")
    )
    yield GaugeMetricFamily(
        "rigshift_settlement_lag_seconds",
        "Age of the oldest unsettled usage record (0 when none)",
        value=(now - unsettled["oldest"]).total_seconds() if unsettled["oldest"] else 0.0,
    )
    yield GaugeMetricFamily("rigshift_usage_unsettled", "Usage records not settled yet", value=unsettled["n"] or 0)

    # Ledger totals by account kind (cached balances, micro-dollars).
    ledger = GaugeMetricFamily(
        "rigshift_ledger_balance_micros", "Sum of account balances by account kind, micro-USD", labels=["kind"]
    )
    for kind, total in Account.objects.values_list("kind").annotate(total=Sum("balance")).order_by("kind"):
        ledger.add_metric([kind], total or 0)
    yield ledger

    # Match rounds: the last one per shard, and totals over a recent window.
    recent = (
        MatchRound.objects.filter(started_at__gte=now - MATCH_WINDOW, finished_at__isnull=False)
        .values_list("shard")
        .annotate(n=Count("id"), placed_sum=Sum("placed"), ms_sum=Sum("total_ms"), ms_max=Max("total_ms"))
        .order_by("shard")
    )
    rounds = GaugeMetricFamily(
        "rigshift_match_rounds_recent", "Finished match rounds in the last 15 minutes", labels=["shard"]
    )
    placed = GaugeMetricFamily(
        "rigshift_match_placements_recent", "Jobs placed by match rounds in the last 15 minutes", labels=["shard"]
    )
    mean = GaugeMetricFamily(
        "rigshift_match_round_duration_seconds_mean", "Mean match round duration, last 15 minutes", labels=["shard"]
    )
    worst = GaugeMetricFamily(
        "rigshift_match_round_duration_seconds_max", "Longest match round, last 15 minutes", labels=["shard"]
    )
    for shard, n, placed_n, total_ms, max_ms in recent:
        rounds.add_metric([shard], n)
        placed.add_metric([shard], placed_n or 0)
        mean.add_metric([shard], (total_ms or 0.0) / 1000.0 / max(n, 1))
        worst.add_metric([shard], (max_ms or 0.0) / 1000.0)
    yield from (rounds, placed, mean, worst)

    last = GaugeMetricFamily(
        "rigshift_match_round_last_duration_seconds", "Duration of the latest finished round", labels=["shard"]
    )
    last_placed = GaugeMetricFamily(
        "rigshift_match_round_last_placed", "Jobs placed by the latest finished round", labels=["shard"]
    )
    last_age = GaugeMetricFamily(
        "rigshift_match_round_last_age_seconds", "Seconds since the latest finished round", labels=["shard"]
    )
    latest_ids = (
        MatchRound.objects.filter(finished_at__isnull=False).values("shard").annotate(last=Max("id")).values("last")
    )
    for row in MatchRound.objects.filter(id__in=latest_ids).order_by("shard"):
        last.add_metric([row.shard], row.total_ms / 1000.0)
        last_placed.add_metric([row.shard], row.placed)
        if row.finished_at is not None:
            last_age.add_metric([row.shard], (now - row.finished_at).total_seconds())
    yield from (last, last_placed, last_age)


class RigShiftCollector(Collector):
    """Everything `/metrics` shows, gathered fresh at each scrape."""

    def collect(self) -> Iterable[Metric]:
        started = time.perf_counter()
        ok = 1.0
        try:
            yield from _request_families()
        except Exception:
            log.exception("metrics: request counters unavailable")
            ok = 0.0
        try:
            queues = GaugeMetricFamily(
                "rigshift_celery_queue_depth", "Messages waiting per Celery queue", labels=["queue"]
            )
            for name, depth in sorted(celery_queue_depths().items()):
                queues.add_metric([name], depth)
            yield queues
        except Exception:
            log.exception("metrics: Celery queue depth unavailable")
            ok = 0.0
        try:
            yield from _db_families()
        except Exception:
            log.exception("metrics: database gauges unavailable")
            ok = 0.0
        yield GaugeMetricFamily("rigshift_metrics_scrape_ok", "1 when every metric source answered", value=ok)
        yield GaugeMetricFamily(
            "rigshift_metrics_scrape_seconds", "Time to gather these metrics", value=time.perf_counter() - started
        )


def metrics_render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RigShiftCollector())
    return generate_latest(registry)
