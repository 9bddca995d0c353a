"""The marketplace's gauges on `/metrics` (registered in MarketplaceConfig.ready): online nodes by GPU tier and
the heartbeat lag of online nodes."""

from collections.abc import Iterator

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from common.metrics import percentile
from marketplace.models import Node, NodeStatus, Tier


def marketplace_metrics() -> Iterator[Metric]:
    now = timezone.now()
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
        lag.add_metric([str(q)], percentile(lags, q))
    yield lag
