"""Reads for the console's flags page: what the broker refused, capped or saw change (issue 12 points 2 and 4)."""

from dataclasses import dataclass

from billing.models import UsageAnomaly
from marketplace.models import NodeChange

MAX_ROWS = 200


@dataclass(frozen=True)
class ChangeRow:
    change: NodeChange
    rows: list[tuple[str, object, object]]  # (figure, old, new) side by side


def staff_flags() -> tuple[list[UsageAnomaly], list[ChangeRow]]:
    """The latest usage anomalies and node changes (unreviewed changes first), newest first."""
    anomalies = list(
        UsageAnomaly.objects.select_related("provider", "customer").order_by("-created_at", "-id")[:MAX_ROWS]
    )
    changes = list(
        NodeChange.objects.select_related("node", "provider", "reviewed_by").order_by(
            "reviewed_at", "-created_at", "-id"
        )[:MAX_ROWS]
    )
    return anomalies, [
        ChangeRow(change=c, rows=[(name, c.old.get(name), c.new.get(name)) for name in c.fields]) for c in changes
    ]
