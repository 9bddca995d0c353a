"""Explanations a customer (and an operator) can act on: which requirement emptied the candidate set
for a job, and what would match instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from django.utils import timezone

from broker.engine.filter import cumulative_masks
from broker.jobspec import FIELD_BY_REASON, JobSpec
from broker.models import Job, JobMode, JobState, Lease, LeaseState
from broker.services.matching import REASON_TEXT, REGIONS, snapshot_take
from common.errors import DomainError
from common.money import format_rate
from marketplace.models import GPUModel
from marketplace.services.reliability import reliability_percent


@dataclass
class Explanation:
    job_id: int
    state: str
    code: str  # a REASONS code, or "placed"/"not_pending"
    message: str
    candidates: int = 0  # nodes meeting every requirement but capacity
    details: dict[str, Any] = field(default_factory=dict)


def _usd_h(micros: float) -> str:
    return format_rate(micros=int(micros), unit="GPU-hour")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def job_explain(*, job: Job, now: datetime | None = None) -> Explanation:
    """Why `job` is (not) placed, in words a customer can act on."""
    now = now or timezone.now()
    if job.state != JobState.PENDING:
        lease = (
            Lease.objects.filter(job=job, state__in=[LeaseState.RESERVED, LeaseState.ACTIVE]).order_by("-pk").first()
        )
        if lease is not None:
            msg = (
                f"Placed on node {lease.node_id}: {lease.gpu_count} GPU(s) at {_usd_h(lease.price_micros)} per GPU "
                f"from {lease.starts_at:%Y-%m-%d %H:%M} UTC."
            )
            return Explanation(
                job.pk, job.state, "placed", msg, details={"lease_id": lease.pk, "node_id": lease.node_id}
            )
        return Explanation(job.pk, job.state, "not_pending", f"The job is {job.state}; it is not waiting for a match.")
    snap = snapshot_take(now=now, job_ids=[job.pk])
    if snap.jobs.count == 0:
        return Explanation(job.pk, job.state, "not_pending", "The job is not waiting for a match.")
    nodes = snap.nodes
    if nodes.count == 0:
        return Explanation(job.pk, job.state, "no_node_with_gpu_count", "No node is listed and online right now.")
    steps = cumulative_masks(snap.jobs, nodes, snap.models, 0, now=now.timestamp())
    before = np.ones(nodes.count, dtype=bool)
    for code, mask in steps:
        if not mask.any():
            return _explain(job=job, snap=snap, code=code, before=before, now=now)
        before = mask
    fit = int(before.sum())
    return Explanation(
        job.pk,
        job.state,
        "contention",
        f"{fit} node(s) fit and have free GPUs now; the job is placed in the next matching round "
        "(higher-priority jobs took the free GPUs in the last one).",
        candidates=fit,
    )


def _requirements(spec: JobSpec) -> str:
    """'with 4 GPUs, ≥ 80 GB VRAM in eu' style summary of the main requirements."""
    req = spec.requirements
    parts = []
    if req.gpu_count > 1:
        parts.append(f"{req.gpu_count} free GPUs,")
    if req.min_gpu_ram:
        parts.append(f"≥ {req.min_gpu_ram:g} GB VRAM")
    if req.gpu_models:
        parts.append("/".join(req.gpu_models[:3]))
    if req.regions:
        parts.append("in " + "/".join(req.regions))
    return ("with " + " ".join(parts).rstrip(",")) if parts else "that meets your requirements"


# Reason codes whose threshold is a GPU model property / a node property: the engine array that holds it.
MODEL_ARRAYS = {"gpu_ram": "vram", "compute_capability": "cc", "tier": "tier"}
NODE_ARRAYS = {
    "reliability": "reliability",
    "inet": "inet",
    "cpu": "cpu_free",
    "ram": "ram_free",
    "disk": "disk_free",
}
# Consumable node resources: the job needs GPUs × its per-GPU minimum free on the node.
CONSUMABLE_UNITS = {"cpu": "CPU cores", "ram": "GB of RAM", "disk": "GB of disk"}


def _best(*, snap: Any, code: str, idx: np.ndarray) -> float:
    """The best value of the code's property among the nodes `idx` (0 when none)."""
    if not len(idx):
        return 0.0
    if code in MODEL_ARRAYS:
        return float(getattr(snap.models, MODEL_ARRAYS[code])[snap.nodes.model[idx]].max())
    return float(getattr(snap.nodes, NODE_ARRAYS[code])[idx].max())


def _gpu_model_message(*, job: Job, nodes: Any, idx: np.ndarray) -> str:
    names = dict(GPUModel.objects.values_list("pk", "name"))
    model_pks = sorted(GPUModel.objects.values_list("pk", flat=True))
    counts: dict[str, int] = {}
    for m in nodes.model[idx]:
        name = names.get(model_pks[int(m)], "?")
        counts[name] = counts.get(name, 0) + 1
    top = ", ".join(f"{n} ({c})" for n, c in sorted(counts.items(), key=lambda kv: -kv[1])[:5])
    allowed = ", ".join(job.gpu_models.values_list("name", flat=True)) or "-"
    return f"No available node has an allowed GPU model ({allowed}). Available now: {top or 'none'}."


def _price_message(*, spec: JobSpec, nodes: Any, idx: np.ndarray) -> tuple[str, int]:
    interruptible = spec.terms.mode == JobMode.INTERRUPTIBLE
    cheapest = float((nodes.min_bid[idx] if interruptible else nodes.ask[idx]).min())
    if interruptible:
        msg = (
            f"The lowest minimum bid of a node {_requirements(spec)} is {_usd_h(cheapest)}; "
            f"your bid is {_usd_h(spec.terms.bid_micros or 0)}."
        )
    else:
        msg = (
            f"The cheapest node {_requirements(spec)} asks {_usd_h(cheapest)}; "
            f"your max is {_usd_h(spec.terms.max_price_micros or 0)}."
        )
    return msg, int(cheapest)


def _explain(*, job: Job, snap: Any, code: str, before: np.ndarray, now: datetime) -> Explanation:  # noqa: C901 — to split into named steps
    spec = JobSpec.from_job(job)
    nodes = snap.nodes
    idx = np.flatnonzero(before)
    details: dict[str, Any] = {"nodes_before_this_requirement": len(idx)}
    msg = REASON_TEXT.get(code, code)
    g = spec.requirements.gpu_count
    if code == "no_node_with_gpu_count":
        biggest = int(nodes.gpu_count.max())
        msg = (
            f"The largest listed node has {biggest} GPUs; you asked for {g} on one node. "
            f"Split the job or ask for ≤ {biggest}."
        )
    elif code == "gpu_model":
        msg = _gpu_model_message(job=job, nodes=nodes, idx=idx)
    elif code in MODEL_ARRAYS or code in NODE_ARRAYS:
        details["best"] = best = _best(snap=snap, code=code, idx=idx)
        field = FIELD_BY_REASON[code]
        want = spec.value(field)
        msg = f"{msg} The best among otherwise fitting nodes offers {best:g}; you require {field.label} {want}."
        if code in CONSUMABLE_UNITS:
            unit = CONSUMABLE_UNITS[code]
            msg = (
                f"{REASON_TEXT.get(code, code)} The most {unit} free on an otherwise fitting node is {best:g}; "
                f"you need {want} per GPU × {g} GPU(s) = {int(want or 0) * g}."
            )
        if code == "reliability":
            best_text, want_text = reliability_percent(best), reliability_percent(float(want or 0))
            msg = f"{REASON_TEXT.get(code, code)} The most reliable otherwise fitting node is at {best_text}; "
            msg += f"you require {want_text}."
    elif code == "region":
        counts: dict[str, int] = {}
        for r in nodes.region[idx]:
            counts[REGIONS[int(r)]] = counts.get(REGIONS[int(r)], 0) + 1
        where = ", ".join(f"{k} ({v})" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        allowed = ", ".join(spec.requirements.regions)
        msg = f"Nodes that meet your GPU requirements are only in: {where or 'nowhere'}; you allow {allowed}."
    elif code == "verified":
        msg = f"{len(idx)} unverified node(s) fit; allow unverified nodes or wait for verification."
    elif code == "availability_window":
        msg = f"{len(idx)} node(s) fit but none is listed for the whole period you asked for."
    elif code == "price":
        msg, details["cheapest_micros"] = _price_message(spec=spec, nodes=nodes, idx=idx)
    elif code == "capacity":
        first = float(np.sort(nodes.slot_free_at[idx], axis=1)[:, g - 1].min())
        details["free_from"] = _when(first)
        msg = f"{len(idx)} node(s) fit but are leased until {_when(first)} at the earliest."
    return Explanation(
        job.pk, job.state, code, msg, candidates=len(idx) if code in ("capacity", "contention") else 0, details=details
    )


def job_explanation_text(*, job: Job) -> str:
    """Why a pending job is not placed, for the customer's job page and the console: the live explanation,
    else the reason the last round stored. Empty for a job that is not waiting."""
    if job.state not in (JobState.PENDING, JobState.PREEMPTED):
        return ""
    try:
        message = job_explain(job=job).message
    except DomainError:
        message = ""
    return message or job.pending_reason or "Not considered by a match round yet."
