"""Risk flags that count against a provider in underwriting (issue 12 point 3).

Two kinds, counted over the trailing window underwriting looks at:
  * anomalies: usage the broker capped because it ran beyond a job's escrow (billing flags it to staff);
  * hardware changes: node claims that changed what a node is and dropped its verification until staff looked.

Financing does not read them itself: the app that records them registers a source once (from its AppConfig.ready),
a function `(*, provider_user, since) -> RiskFlags`. With no source registered, `provider_risk_flags_for` reads
nothing and every provider has no flags. Wiring one is a single call, e.g.::

    register_risk_flag_source(lambda *, provider_user, since: RiskFlags(anomalies=..., hardware_changes=...))

Policy (services/underwriting.py): each flag adds FLAG_FEE_BPS to the fee (at most MAX_FLAG_FEE_BPS);
DECLINE_FLAGS or more decline the application (D8). Staff see the flags with the application.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import User

FLAG_FEE_BPS = 100
MAX_FLAG_FEE_BPS = 300
DECLINE_FLAGS = 3


@dataclass(frozen=True)
class RiskFlags:
    anomalies: int = 0
    hardware_changes: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.anomalies + self.hardware_changes


RiskFlagSource = Callable[..., RiskFlags]
_source: list[RiskFlagSource] = []


def register_risk_flag_source(source: RiskFlagSource | None) -> None:
    """Register (or, with None, remove) the source of risk flags; the last registered one is used."""
    _source.clear()
    if source is not None:
        _source.append(source)


def provider_risk_flags_for(*, provider_user: User, since: datetime) -> RiskFlags:
    """The provider's risk flags since `since` from the registered source; none when no source is registered."""
    if not _source:
        return RiskFlags()
    return _source[0](provider_user=provider_user, since=since)
