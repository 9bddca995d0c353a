"""Billing's gauges on `/metrics` (registered in BillingConfig.ready): settlement lag, unsettled usage and the
ledger's balances by account kind (micro-dollars)."""

from collections.abc import Iterator

from django.db.models import Count, Min, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from billing.models import Account, UsageRecord, UsageStatus


def billing_metrics() -> Iterator[Metric]:
    now = timezone.now()
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
