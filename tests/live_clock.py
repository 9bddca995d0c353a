"""One clock for a node agent and the live test server (they run in the same process).

The broker meters leases by its own clock (billing/services/metering.py, THE RULE) and refuses usage reported for
the future, so an agent whose simulated clock runs ahead of the server's would be refused. `ServerClock` moves both:
the agent reads it, and `django.utils.timezone.now` (what the server's code and auto_now fields read) follows it.
"""

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone


class ServerClock:
    def __init__(self, monkeypatch: Any, start: datetime | None = None) -> None:
        self.now = (start or timezone.now()).timestamp()
        monkeypatch.setattr(timezone, "now", self.datetime)

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def __call__(self) -> float:
        return self.now
