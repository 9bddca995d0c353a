"""Job state changes told to the job's customer (notify: e-mail and webhooks), once per timeline step."""

from collections.abc import Mapping, Sequence
from datetime import datetime

from django.contrib.auth.models import User

from broker.models import Job, JobEvent, JobState
from notify.models import EventKind
from notify.services.events import notify_event, users_listening

_STATES = {s.value for s in JobState}


def job_events_notify(*, events: Sequence[JobEvent], owners: Mapping[int, int] | None = None) -> None:
    """For each state-change step in `events` (workload phases are not state changes), tell the job's customer.
    The step's id is the event key, so a step is told once. `owners` ({job id: customer user id}), when the caller
    knows them (the booking), saves their lookup."""
    steps = [e for e in events if e.to_state in _STATES and e.pk is not None]
    if not steps:
        return
    if owners is None:
        owners = dict(Job.objects.filter(pk__in={e.job_id for e in steps}).values_list("pk", "customer__user_id"))
    listening = users_listening(user_ids=set(owners.values()))
    if not listening:
        return
    users = User.objects.in_bulk(listening)
    for event in steps:
        user = users.get(owners.get(event.job_id, -1))
        if user is None:
            continue
        notify_event(
            user=user,
            kind=EventKind.JOB_STATE,
            key=f"job-event:{event.pk}",
            subject=f"Job {event.job_id} is {event.to_state}",
            payload={
                "job_id": event.job_id,
                "from_state": event.from_state,
                "to_state": event.to_state,
                "note": event.note,
                "at": event.at.isoformat() if event.at else None,
            },
        )


def job_steps_notify(*, job_ids: Sequence[int], to_state: str, at: datetime) -> None:
    """The steps a bulk write (a match round) just inserted: read back only for jobs whose customer listens."""
    if not job_ids:
        return
    owners = dict(Job.objects.filter(pk__in=set(job_ids)).values_list("pk", "customer__user_id"))
    listening = users_listening(user_ids=set(owners.values()))
    jobs = [job_id for job_id, user_id in owners.items() if user_id in listening]
    if jobs:
        job_events_notify(events=list(JobEvent.objects.filter(job_id__in=jobs, to_state=to_state, at=at)))
