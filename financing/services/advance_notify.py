"""Financing events on the notify channels: the provider's webhooks/e-mail hear when its advance is fully funded,
disbursed, repaid or defaulted (kind `financing.updated`, once per advance and step)."""

from financing.models import Advance
from notify.models import EventKind
from notify.services.events import notify_event

NOTIFIED_STEPS = frozenset({"funded", "disbursed", "repaid", "defaulted"})


def advance_notify(*, advance: Advance, step: str, message: str) -> None:
    """Tell the advance's provider about `step` (after commit; once per advance and step)."""
    if step not in NOTIFIED_STEPS:
        return
    notify_event(
        user=advance.provider,
        kind=EventKind.FINANCING,
        key=f"advance:{advance.pk}:{step}",
        subject=f"Advance {advance.pk}: {step}",
        payload={"advance_id": advance.pk, "event": step, "status": str(advance.status), "message": message[:500]},
    )
