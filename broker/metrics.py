"""The broker's gauges on `/metrics` (registered in BrokerConfig.ready): pending jobs by age, jobs by state and
match rounds (per shard: recent totals and the latest round)."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from broker.models import Job, JobState, MatchRound
from broker.selectors.matching_health import matching_health_get

PENDING_AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("lt_1m", 0, 60),
    ("1m_5m", 60, 300),
    ("5m_15m", 300, 900),
    ("15m_1h", 900, 3600),
    ("gt_1h", 3600, None),
)
MATCH_WINDOW = timedelta(minutes=15)


def broker_metrics() -> Iterator[Metric]:
    now = timezone.now()
    yield from _jobs(now=now)
    yield from _match_rounds_recent(now=now)
    yield from _match_rounds_latest(now=now)
    yield from _match_stall(now=now)


def _jobs(*, now: datetime) -> Iterator[Metric]:
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


def _match_rounds_recent(*, now: datetime) -> Iterator[Metric]:
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


def _match_rounds_latest(*, now: datetime) -> Iterator[Metric]:
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


def _match_stall(*, now: datetime) -> Iterator[Metric]:
    """The alert: 1 while jobs are pending and no match round has succeeded for RIGSHIFT_MATCH_STALL_S."""
    health = matching_health_get(now=now)
    stalled = GaugeMetricFamily(
        "rigshift_match_stalled",
        "1 when jobs are pending and no match round has succeeded for RIGSHIFT_MATCH_STALL_S (alert on it)",
    )
    stalled.add_metric([], 1.0 if health.stalled else 0.0)
    age = GaugeMetricFamily(
        "rigshift_match_round_last_success_age_seconds", "Seconds since the latest successful match round"
    )
    if health.last_success_age_s is not None:
        age.add_metric([], health.last_success_age_s)
    failed = GaugeMetricFamily(
        "rigshift_match_rounds_failed_since_success", "Match rounds that failed since the latest successful one"
    )
    failed.add_metric([], health.failed_recent)
    yield from (stalled, age, failed)
