"""Prometheus metrics for `GET /metrics`, all named `rigshift_…`.

Two kinds of numbers, both safe with many web and worker processes on many machines:

- **Request counters** (count, latency histogram, 5xx errors by view): every request adds to a
  per-process buffer that goes to a few Redis hashes in one pipelined round trip (`HINCRBY`/
  `HINCRBYFLOAT`) at most every half second, so every gunicorn worker on every machine adds to the same
  totals and any of them can serve the scrape. Without REDIS_URL (the
  single-machine embedded setup) they are kept in process memory: exact for one process, per-process
  otherwise. If Redis is down a request is never failed for metrics: the observation is dropped and
  `rigshift_metrics_dropped_total` says how many.
- **Gauges** (queue depths here; pending jobs by age, nodes online by tier, heartbeat lag, settlement
  lag, ledger totals, match rounds from the apps that own them, through `register_collector`) are
  computed at scrape time with a few aggregate queries, so no process has to keep them up to date and
  they are the same whichever process answers.

Money is reported in integer micro-dollars (`…_micros`), like everywhere else.
"""

import atexit
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from common.cache import redis_client, redis_client_for

log = logging.getLogger(__name__)

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_KEY = "rigshift:metrics:"


def _key(name: str) -> str:
    """Redis key of one counter hash; RIGSHIFT_METRICS_KEY_PREFIX separates deployments (or tests) sharing a Redis."""
    return str(getattr(settings, "RIGSHIFT_METRICS_KEY_PREFIX", _KEY)) + name


_SEP = "\t"
_CPU = "cpu" + _SEP  # the CPU-seconds sums share the latency sums' hash, under this prefix


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

    def observe(self, *, view: str, method: str, status: int, seconds: float, cpu_seconds: float = 0.0) -> None:
        with self.lock:
            self.count[_SEP.join((view, method, str(status)))] += 1
            self.sums[view] += seconds
            self.sums[_CPU + view] += cpu_seconds
            self.buckets[_SEP.join((view, _bucket_for(seconds)))] += 1

    def snapshot(self) -> tuple[dict[str, float], dict[str, float], dict[str, float], int]:
        with self.lock:
            return dict(self.count), dict(self.sums), dict(self.buckets), self.dropped


class _RedisStore:
    """Counters shared by every process through Redis hashes, written in batches.

    A request adds to a per-process buffer; the buffer goes to Redis in one pipelined round trip every
    `RIGSHIFT_METRICS_FLUSH_S` seconds (0.5 by default; a daemon thread, and the first observation of a
    process at once), before a scrape this process answers, and at exit. A scrape by another process may
    lag by that much."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.dropped = 0
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, str], float] = defaultdict(float)
        self.last_flush = float("-inf")
        self.flusher_pid = 0
        atexit.register(self.flush)

    def _start_flusher(self) -> None:
        """A daemon thread per process flushes the buffer on time, so an idle process's counts are not held back
        (started lazily: threads do not survive gunicorn's fork)."""
        self.flusher_pid = os.getpid()

        def run() -> None:
            while True:
                time.sleep(float(getattr(settings, "RIGSHIFT_METRICS_FLUSH_S", 0.5)))
                self.flush()

        threading.Thread(target=run, name="rigshift-metrics-flush", daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.pending.clear()
        self.client.delete(*(_key(name) for name in ("count", "sum", "bucket", "dropped")))

    def observe(self, *, view: str, method: str, status: int, seconds: float, cpu_seconds: float = 0.0) -> None:
        with self.lock:
            self.pending[(_key("count"), _SEP.join((view, method, str(status))))] += 1
            self.pending[(_key("sum"), view)] += seconds
            self.pending[(_key("sum"), _CPU + view)] += cpu_seconds
            self.pending[(_key("bucket"), _SEP.join((view, _bucket_for(seconds))))] += 1
            if self.flusher_pid != os.getpid():
                self._start_flusher()
            due = time.monotonic() - self.last_flush >= float(getattr(settings, "RIGSHIFT_METRICS_FLUSH_S", 0.5))
        if due:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, defaultdict(float)
            self.last_flush = time.monotonic()
        if not batch:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for (key, field), amount in batch.items():
                if key.endswith("sum"):
                    pipe.hincrbyfloat(key, field, amount)
                else:
                    pipe.hincrby(key, field, int(amount))
            pipe.execute()
        except Exception:  # noqa: BLE001 — metrics never fail a request
            self.dropped += int(sum(n for (key, _), n in batch.items() if key.endswith("count")))

    def snapshot(self) -> tuple[dict[str, float], dict[str, float], dict[str, float], int]:
        self.flush()
        pipe = self.client.pipeline(transaction=False)
        for name in ("count", "sum", "bucket"):
            pipe.hgetall(_key(name))
        count, sums, buckets = pipe.execute()

        def decode(raw: dict[bytes, bytes]) -> dict[str, float]:
            return {k.decode(): float(v) for k, v in raw.items()}

        return decode(count), decode(sums), decode(buckets), self.dropped


@lru_cache(maxsize=4)
def _store_for(url: str) -> _LocalStore | _RedisStore:
    client = redis_client()
    return _RedisStore(client) if url and client is not None else _LocalStore()


def request_store() -> _LocalStore | _RedisStore:
    return _store_for(getattr(settings, "REDIS_URL", "") or "")


def request_observe(*, view: str, method: str, status: int, seconds: float, cpu_seconds: float = 0.0) -> None:
    """Called by `RequestContextMiddleware` once per request (`cpu_seconds`: the serving thread's CPU time)."""
    request_store().observe(view=view, method=method, status=status, seconds=seconds, cpu_seconds=cpu_seconds)


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
    cpu = CounterMetricFamily(
        "rigshift_http_request_cpu_seconds",
        "CPU time of the threads serving requests, by view (inside the middleware stack)",
        labels=["view"],
    )
    for key, value in sorted(sums.items()):
        if key.startswith(_CPU):
            cpu.add_metric([key[len(_CPU) :]], value)
    yield cpu
    yield CounterMetricFamily(
        "rigshift_metrics_dropped", "Request observations lost (metrics store unreachable)", value=dropped
    )


# --- Celery queue depths, computed at scrape time ------------------------------------------------


def celery_queue_names() -> list[str]:
    names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")}
    names.update(getattr(settings, "RIGSHIFT_METRICS_QUEUES", []))
    return sorted(names)


def celery_queue_depths() -> dict[str, int]:
    """Messages waiting per queue: Redis LLEN with REDIS_URL, else files in the filesystem broker's folder."""
    names = celery_queue_names()
    broker_url: str = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if broker_url.startswith(("redis://", "rediss://")):
        pipe = redis_client_for(broker_url).pipeline(transaction=False)
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


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# --- gauges contributed by the apps -------------------------------------------------------------
# common is the ground and imports no app: each app registers the gauges it owns (from its AppConfig.ready,
# see e.g. broker/metrics.py) and the scrape only reads this registry, in registration (app) order.

MetricsSource = Callable[[], Iterable[Metric]]
_SOURCES: dict[str, MetricsSource] = {}


def register_collector(*, name: str, collect: MetricsSource) -> None:
    """Add an app's scrape-time gauges to `/metrics`; `collect()` yields metric families, computed fresh at
    each scrape. Registering a name again replaces its source (AppConfig.ready may run more than once)."""
    _SOURCES[name] = collect


def registered_collectors() -> list[tuple[str, MetricsSource]]:
    return list(_SOURCES.items())


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
        for name, collect in registered_collectors():
            try:
                families = list(collect())  # all or nothing per source: no half-written family
            except Exception:
                log.exception("metrics: %s gauges unavailable", name)
                ok = 0.0
                continue
            yield from families
        yield GaugeMetricFamily("rigshift_metrics_scrape_ok", "1 when every metric source answered", value=ok)
        yield GaugeMetricFamily(
            "rigshift_metrics_scrape_seconds", "Time to gather these metrics", value=time.perf_counter() - started
        )


def metrics_render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RigShiftCollector())
    return generate_latest(registry)
