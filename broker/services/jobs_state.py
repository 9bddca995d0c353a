"""The one path for job state changes: a conditional update plus a timeline event."""

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from broker.models import Job, JobEvent, JobState
from broker.services.job_notify import job_events_notify


def job_transition(
    *, job_id: int, from_states: Iterable[JobState | str], to_state: JobState | str, note: str = "", **fields: object
) -> bool:
    """Move job `job_id` to `to_state` only if it is in one of `from_states`.

    Extra `fields` are written in the same UPDATE. Returns False (and changes nothing) when the job
    was not in an allowed state, so a repeated or late call is a no-op.
    """
    allowed = [str(s) for s in from_states]
    with transaction.atomic():
        current = Job.objects.filter(pk=job_id).values_list("state", flat=True).first()
        if current is None or current not in allowed:
            return False
        updated = Job.objects.filter(pk=job_id, state=current).update(
            state=str(to_state), updated_at=timezone.now(), **fields
        )
        if not updated:
            return False
        event = JobEvent.objects.create(job_id=job_id, from_state=current, to_state=str(to_state), note=note[:500])
        job_events_notify(events=[event])
        return True
