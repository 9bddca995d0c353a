"""The risk-flag source underwriting reads (services/risk.py), registered from FinancingConfig.ready.

Issue 12 point 3: what counts against a provider is what billing and marketplace recorded about it:
  * usage anomalies (billing.UsageAnomaly): usage the broker capped at a job's escrow hold or at its own clock, and
    usage reports it refused, one flag per lease and kind;
  * node changes (marketplace.NodeChange): agent reports that changed what a node is and dropped its verification.
"""

from datetime import datetime

from django.contrib.auth.models import User

from billing.models import UsageAnomaly
from financing.services.risk import RiskFlags
from marketplace.models import NodeChange


def provider_risk_flags(*, provider_user: User, since: datetime) -> RiskFlags:
    """The provider's anomaly flags and node changes since `since`, with one line each for staff."""
    anomalies = _first_per_lease(provider_user=provider_user, since=since)
    changes = list(
        NodeChange.objects.filter(provider__user=provider_user, created_at__gte=since)
        .order_by("pk")
        .values_list("node_id", "old", "new", "created_at")
    )
    details = [f"usage anomaly ({kind}) on lease {lease}: {detail}" for kind, lease, detail in anomalies]
    details += [
        f"node {node} changed on {at:%Y-%m-%d}: was {old}, agent now claims {new}" for node, old, new, at in changes
    ]
    return RiskFlags(anomalies=len(anomalies), hardware_changes=len(changes), details=details)


def _first_per_lease(*, provider_user: User, since: datetime) -> list[tuple[str, int, str]]:
    seen: dict[tuple[str, int], str] = {}
    for kind, lease, detail in (
        UsageAnomaly.objects.filter(provider=provider_user, created_at__gte=since)
        .order_by("pk")
        .values_list("kind", "lease_ref", "detail")
    ):
        seen.setdefault((kind, lease), detail)
    return [(kind, lease, detail) for (kind, lease), detail in sorted(seen.items())]
