"""What the agent says about a lease's workload besides usage: its phases (with the port mapping) and its log.

Both arrive in a heartbeat and are applied inside the heartbeat's transaction, only for the node's own
leases (a line or a phase for another node's lease is ignored and listed as such).

Logs: each line carries the agent's per-lease number; (lease, seq) is unique, so a resent heartbeat, or a
line sent twice, is stored once. The server keeps the last `RIGSHIFT_JOB_LOG_MAX_LINES` lines of each job
(5,000 by default, each at most 2,000 characters: at most about 10 MB per job); older lines are deleted as
new ones arrive.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

from broker.models import Job, JobEvent, JobLogLine, Lease, WorkloadPhase
from broker.selectors.agent import OwnedLease

PHASE_NOTES = {"pulling": "pulling the image", "starting": "starting the container", "running": "workload running"}


def lease_phases_apply(*, events: Sequence[dict[str, Any]], owned: Mapping[int, OwnedLease]) -> None:
    """Record phase changes of the node's own leases: the job's `phase`, a timeline step for pulling and
    starting (running is the job's own `running` step), and the port mapping when it runs."""
    for event in sorted(events, key=lambda e: e["at"]):
        if event["lease_id"] not in owned:
            continue
        job_id = owned[event["lease_id"]].job_id
        phase = event["phase"]
        job = Job.objects.filter(pk=job_id).values("state", "phase").first()
        if job is None or job["phase"] == WorkloadPhase.EXITED:
            continue
        Job.objects.filter(pk=job_id).update(phase=phase)
        if phase in ("pulling", "starting") and job["phase"] != phase:
            JobEvent.objects.create(
                job_id=job_id, from_state=job["phase"] or job["state"], to_state=phase, note=PHASE_NOTES[phase]
            )
        if phase == "running" and event.get("ports"):
            ports = [
                {"container": p["container"], "host": p["host"], "protocol": p.get("protocol", "tcp")}
                for p in event["ports"]
            ]
            Lease.objects.filter(pk=event["lease_id"]).update(port_map=ports)


def lease_logs_append(*, lines: Sequence[dict[str, Any]], owned: Mapping[int, OwnedLease]) -> int:
    """Store the node's own lines once each; trim each touched job to its last lines. Returns lines stored."""
    rows = [
        JobLogLine(
            job_id=owned[line["lease_id"]].job_id,
            lease_id=line["lease_id"],
            seq=line["seq"],
            at=line["at"],
            stream=line["stream"],
            text=line["text"],
        )
        for line in sorted(lines, key=lambda item: (item["lease_id"], item["seq"]))
        if line["lease_id"] in owned
    ]
    if not rows:
        return 0
    before = JobLogLine.objects.filter(lease_id__in={row.lease_id for row in rows}).count()
    JobLogLine.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    stored = JobLogLine.objects.filter(lease_id__in={row.lease_id for row in rows}).count() - before
    keep = settings.RIGSHIFT_JOB_LOG_MAX_LINES
    for job_id in sorted({row.job_id for row in rows}):
        cut = JobLogLine.objects.filter(job_id=job_id).order_by("-id").values_list("id", flat=True)[keep : keep + 1]
        if cut:
            JobLogLine.objects.filter(job_id=job_id, id__lte=cut[0]).delete()
    return stored
