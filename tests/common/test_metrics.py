"""GET /metrics: access control, Prometheus format, request counters, and the DB gauges computed at scrape."""

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from billing.models import AccountKind, UsageRecord
from billing.services.ledger import account_get
from broker.models import Job, JobState, MatchRound
from common import metrics
from marketplace.models import NodeStatus, Tier
from tests.factories import CustomerFactory, GPUModelFactory, JobFactory, NodeFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def scrape(client: Client, **headers: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture(autouse=True)
def _fresh_counters(settings: Any) -> None:
    # Own Redis keys per test, so parallel test processes sharing the Redis do not add to these counts.
    settings.RIGSHIFT_METRICS_KEY_PREFIX = f"rigshift:test-metrics:{uuid.uuid4().hex}:"
    metrics.request_metrics_reset()


def test_request_counters_are_shared_between_processes(client: Client) -> None:
    """With Redis, a request served by another process shows up in this process's scrape."""
    from django.conf import settings

    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (without it the counters are per process)")
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        f"settings.RIGSHIFT_METRICS_KEY_PREFIX = {settings.RIGSHIFT_METRICS_KEY_PREFIX!r}\n"
        "from common.metrics import request_observe\n"
        "request_observe(view='api-jobs', method='GET', status=200, seconds=0.01)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    metrics.request_observe(view="api-jobs", method="GET", status=200, seconds=0.02)
    samples = scrape(client)
    assert value(samples, "rigshift_http_requests_total", view="api-jobs", method="GET", status="200") == 2


def test_loopback_allowed_without_token_others_refused(client: Client) -> None:
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    refused = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert refused.status_code == 403
    assert b"METRICS_TOKEN" in refused.content


@override_settings(METRICS_TOKEN="s3cret-scrape")
def test_token_required_when_configured(client: Client) -> None:
    assert client.get("/metrics").status_code == 403  # loopback is not enough once a token is set
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape", REMOTE_ADDR="10.1.2.3")
    assert ok.status_code == 200
    assert b"rigshift_" in ok.content


def test_request_latency_and_errors_by_view(client: Client) -> None:
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    client.get("/api/v1/jobs/")  # anonymous: 401
    samples = scrape(client)
    assert value(samples, "rigshift_http_requests_total", view="healthz", method="GET", status="200") == 3
    assert value(samples, "rigshift_http_requests_total", view="api-jobs", method="GET", status="401") == 1
    assert value(samples, "rigshift_http_request_duration_seconds_count", view="healthz") == 3
    assert value(samples, "rigshift_http_request_duration_seconds_bucket", view="healthz", le="+Inf") == 3
    assert value(samples, "rigshift_http_request_duration_seconds_sum", view="healthz") > 0


def test_server_errors_counted_by_view() -> None:
    metrics.request_observe(view="api-jobs", method="POST", status=500, seconds=0.2)
    metrics.request_observe(view="api-jobs", method="POST", status=201, seconds=0.02)
    samples = scrape(Client())
    assert value(samples, "rigshift_http_errors_total", view="api-jobs") == 1
    assert value(samples, "rigshift_http_request_duration_seconds_bucket", view="api-jobs", le="0.025") == 1
    assert value(samples, "rigshift_http_request_duration_seconds_bucket", view="api-jobs", le="0.25") == 2


def test_gauges_from_the_database(client: Client) -> None:
    now = timezone.now()
    customer: Any = CustomerFactory()
    fresh = JobFactory(customer=customer, name="fresh", gpu_count=1, image="img", duration_seconds=60)
    old = JobFactory(customer=customer, name="old", gpu_count=1, image="img", duration_seconds=60)
    Job.objects.filter(pk=old.pk).update(created_at=now - timedelta(minutes=20))
    JobFactory(customer=customer, name="done", gpu_count=1, image="img", duration_seconds=60, state=JobState.COMPLETED)
    assert fresh.state == JobState.PENDING

    training = GPUModelFactory(slug="h100-sxm", name="H100 SXM", tier=Tier.TRAINING)
    NodeFactory(status=NodeStatus.ONLINE, last_heartbeat_at=now - timedelta(seconds=5))
    NodeFactory(status=NodeStatus.ONLINE, gpu_model=training, last_heartbeat_at=now - timedelta(seconds=45))
    NodeFactory(status=NodeStatus.OFFLINE, gpu_model=training, last_heartbeat_at=now - timedelta(hours=1))

    usage = UsageRecord.objects.create(node_id=1, lease_ref=1, seq=1, gpu_ms=1000)
    UsageRecord.objects.filter(pk=usage.pk).update(received_at=now - timedelta(seconds=90))

    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=customer.user)
    type(wallet).objects.filter(pk=wallet.pk).update(balance=2_500_000)

    MatchRound.objects.create(
        shard="default",
        started_at=now - timedelta(seconds=10),
        finished_at=now - timedelta(seconds=9),
        placed=3,
        jobs_considered=5,
        total_ms=250.0,
    )
    MatchRound.objects.create(
        shard="default",
        started_at=now - timedelta(seconds=4),
        finished_at=now - timedelta(seconds=3),
        placed=1,
        jobs_considered=2,
        total_ms=50.0,
    )

    samples = scrape(client)
    assert value(samples, "rigshift_jobs_pending", age="lt_1m") == 1
    assert value(samples, "rigshift_jobs_pending", age="15m_1h") == 1
    assert value(samples, "rigshift_jobs_pending", age="gt_1h") == 0
    assert value(samples, "rigshift_jobs", state="completed") == 1
    assert value(samples, "rigshift_nodes_online", tier="fine_tuning") == 1
    assert value(samples, "rigshift_nodes_online", tier="training") == 1  # the offline one is not counted
    assert value(samples, "rigshift_heartbeat_lag_seconds", quantile="1.0") == pytest.approx(45, abs=5)
    assert value(samples, "rigshift_heartbeat_lag_seconds", quantile="0.5") < 46
    assert value(samples, "rigshift_settlement_lag_seconds") == pytest.approx(90, abs=5)
    assert value(samples, "rigshift_usage_unsettled") == 1
    assert value(samples, "rigshift_ledger_balance_micros", kind="customer_wallet") == 2_500_000
    assert value(samples, "rigshift_match_rounds_recent", shard="default") == 2
    assert value(samples, "rigshift_match_placements_recent", shard="default") == 4
    assert value(samples, "rigshift_match_round_duration_seconds_max", shard="default") == pytest.approx(0.25)
    assert value(samples, "rigshift_match_round_last_duration_seconds", shard="default") == pytest.approx(0.05)
    assert value(samples, "rigshift_match_round_last_placed", shard="default") == 1
    assert value(samples, "rigshift_celery_queue_depth", queue="celery") >= 0
    assert value(samples, "rigshift_metrics_scrape_ok") == 1


def test_empty_database_still_scrapes(client: Client) -> None:
    samples = scrape(client)
    assert value(samples, "rigshift_settlement_lag_seconds") == 0
    assert value(samples, "rigshift_heartbeat_lag_seconds", quantile="0.99") == 0
    assert value(samples, "rigshift_metrics_scrape_ok") == 1


def test_scrape_query_count_is_constant(client: Client, django_assert_max_num_queries: Any) -> None:
    for i in range(20):
        NodeFactory(status=NodeStatus.ONLINE, last_heartbeat_at=timezone.now() - timedelta(seconds=i))
    with django_assert_max_num_queries(12):
        assert client.get("/metrics").status_code == 200


def test_filesystem_queue_depth_counts_message_files(tmp_path: Any) -> None:
    for i in range(3):
        (tmp_path / f"{i}_abc.celery.msg").write_text("{}")
    (tmp_path / "9_xyz.other.msg").write_text("{}")
    with override_settings(
        CELERY_BROKER_URL="filesystem://", CELERY_BROKER_TRANSPORT_OPTIONS={"data_folder_in": str(tmp_path)}
    ):
        assert metrics.celery_queue_depths() == {"celery": 3, "other": 1}


def test_redis_queue_depth_uses_llen() -> None:
    import redis
    from django.conf import settings

    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = "rigshift-test-metrics-queue"
    client.delete(queue)
    client.rpush(queue, "a", "b")
    try:
        with override_settings(CELERY_BROKER_URL=settings.REDIS_URL, RIGSHIFT_METRICS_QUEUES=[queue]):
            assert metrics.celery_queue_depths()[queue] == 2
    finally:
        client.delete(queue)


def test_each_app_contributes_its_gauges_through_the_registry() -> None:
    names = [name for name, _ in metrics.registered_collectors()]
    assert names == ["marketplace", "billing", "broker"]  # app order: the ready() of each app registered it


def test_a_failing_source_is_isolated_and_flagged(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        yield GaugeMetricFamily("rigshift_half_written", "never shown", value=1)
        raise RuntimeError("source down")

    def extra() -> Any:
        yield GaugeMetricFamily("rigshift_extra_gauge", "a later source still answers", value=7)

    monkeypatch.setitem(metrics._SOURCES, "broken", broken)
    monkeypatch.setitem(metrics._SOURCES, "extra", extra)
    samples = scrape(client)
    assert value(samples, "rigshift_metrics_scrape_ok") == 0
    assert value(samples, "rigshift_extra_gauge") == 7
    assert value(samples, "rigshift_jobs", state="pending") == 0  # the apps' gauges are still there
    assert not any(name == "rigshift_half_written" for name, _ in samples)
