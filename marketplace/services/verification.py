"""Hardware verification: compare what the agent reports with what the provider registered.

- `node_agent_report_apply` stores the agent's report on the node (register call), sets
  `hardware_mismatch` (GPU model, count and VRAM against the registration) and `benchmark_flag`
  (a measured figure far from the catalog), and takes verification away while a mismatch stands.
- `node_verify` / `node_deverify` are the staff actions; verification is refused while the agent
  has never reported, a hardware mismatch stands, or the latest compute challenge has not passed
  (marketplace/services/challenge.py: the agent's own benchmark figure is never taken for `dlperf`).
"""

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, PermissionDenied
from common.services import audit_log
from marketplace.catalog_data import CATALOG
from marketplace.models import ChallengeReason, ChallengeState, GPUModel, Node, NodeChange, NodeStatus
from marketplace.services.challenge import node_challenge_issue
from marketplace.services.gpu_names import match_slug
from marketplace.signals import node_verified

logger = logging.getLogger(__name__)

# A measured benchmark below this share of the catalog figure is flagged for staff.
BENCHMARK_LOW_SHARE = 0.5
# ... and above this multiple (a spoofed or mis-scaled figure).
BENCHMARK_HIGH_MULTIPLE = 2.0
# Reported VRAM per GPU may be this much below the catalog figure (driver reserve, GiB vs GB).
VRAM_TOLERANCE = 0.10

_VENDOR_WORDS = re.compile(r"\b(nvidia|geforce|amd|radeon|ati|graphics|corporation|corp|inc)\b")


def name_normalise(name: str) -> str:
    """A forgiving key for a GPU name: vendor words and punctuation removed, lower case.

    "NVIDIA GeForce RTX 4090" and "GeForce RTX 4090" both become "rtx4090".
    """
    lowered = _VENDOR_WORDS.sub(" ", name.lower())
    return re.sub(r"[^a-z0-9]", "", lowered)


@lru_cache(maxsize=1)
def _catalog_names() -> dict[str, str]:
    return {spec.slug: spec.name for spec in CATALOG}


def _catalog_slug(name: str, vram_gb: float | None = None, *, prefer: str = "") -> str | None:
    """The catalog slug of a GPU name as the driver reports it (pure: no database query).

    When the bare name denotes another variant than `prefer` (e.g. "RTX 3060" → the 12 GB card), the
    reported VRAM is tried as a size hint, so a registered 8 GB variant still matches.
    """
    slug = match_slug(name)
    if slug != prefer and vram_gb is not None and vram_gb > 0:
        hinted = match_slug(f"{name} {round(vram_gb)}GB")
        if hinted == prefer:
            return hinted
    return slug


def gpu_name_matches(*, name: str, gpu_model: GPUModel, vram_gb: float | None = None) -> bool:
    """Does a GPU name as the agent reports it ("NVIDIA GeForce RTX 4090") denote `gpu_model`?

    Uses the catalog's forgiving matcher; a name it does not know is compared by normalised name
    with the model's name, slug and aliases.
    """
    slug = _catalog_slug(name, vram_gb, prefer=gpu_model.slug)
    if slug is not None:
        return slug == gpu_model.slug
    key = name_normalise(name)
    if not key:
        return False
    candidates = {name_normalise(gpu_model.name), name_normalise(gpu_model.slug)}
    candidates.update(name_normalise(str(alias)) for alias in (gpu_model.aliases or []))
    return key in candidates


def reported_names(gpu: dict[str, Any]) -> list[str]:
    """The models one reported GPU may be: its candidates where the agent could not tell them apart, else its name."""
    candidates = [str(name) for name in gpu.get("candidates") or [] if str(name).strip()]
    return candidates or [str(gpu.get("name") or "")]


def _name_label(name: str, vram_gb: float | None) -> str:
    slug = _catalog_slug(name, vram_gb)
    if slug is not None:
        return _catalog_names().get(slug, name)
    return name.strip() or "unnamed GPU"


def _gpu_label(gpu: dict[str, Any], gpu_model: GPUModel) -> tuple[str, bool]:
    """(display name, matches the registered model) for one reported GPU; a GPU reported with candidates
    matches when any of them is the registered model."""
    vram = gpu.get("vram_gb")
    vram_gb = float(vram) if vram is not None else None
    names = reported_names(gpu)
    if any(gpu_name_matches(name=name, gpu_model=gpu_model, vram_gb=vram_gb) for name in names):
        return gpu_model.name, True
    return " or ".join(dict.fromkeys(_name_label(name, vram_gb) for name in names)), False


def gpu_report_matches(*, gpu: dict[str, Any], gpu_model: GPUModel) -> bool:
    """Does one GPU as the agent reports it (name, VRAM, candidates) denote `gpu_model`?"""
    return _gpu_label(gpu, gpu_model)[1]


def hardware_mismatch_describe(*, gpu_model: GPUModel, gpu_count: int, gpus: list[dict[str, Any]]) -> str:
    """'' when the agent's GPUs are the registered ones, else one sentence for the provider and staff.

    Example: "registered 8× GeForce RTX 4090, agent sees 6× GeForce RTX 4090".
    """
    registered = f"registered {gpu_count}× {gpu_model.name}"
    if not gpus:
        return f"{registered}, agent sees no GPUs"
    labels = [_gpu_label(gpu, gpu_model) for gpu in gpus]
    seen = Counter(label for label, _ in labels)
    all_match = all(matches for _, matches in labels)
    if not all_match or len(gpus) != gpu_count:
        parts = [f"{count}× {name}" for name, count in sorted(seen.items(), key=lambda item: (-item[1], item[0]))]
        return f"{registered}, agent sees {' + '.join(parts)}"
    catalog_vram = float(gpu_model.vram_gb)
    short = [
        gpu
        for gpu in gpus
        if gpu.get("vram_gb") is not None and float(gpu["vram_gb"]) < catalog_vram * (1 - VRAM_TOLERANCE)
    ]
    if short:
        smallest = min(float(gpu["vram_gb"]) for gpu in short)
        return (
            f"{registered} with {catalog_vram:g} GB each, agent sees {len(short)} GPU(s) with only {smallest:g} GB VRAM"
        )
    return ""


def benchmark_flag_describe(*, gpu_model: GPUModel, benchmark: dict[str, Any] | None) -> str:
    """'' when the measured figures are plausible for the model, else a note for staff.

    `benchmark.tflops` is the measured dense FP16 TFLOPS of one GPU; `mem_bandwidth_gbs` its
    memory bandwidth. Below half the catalog figure (or above twice it) is flagged.
    """
    if not benchmark:
        return ""
    notes: list[str] = []
    checks = (
        ("tflops", float(gpu_model.fp16_tflops), "FP16 TFLOPS"),
        ("mem_bandwidth_gbs", float(gpu_model.mem_bandwidth_gbs), "GB/s memory bandwidth"),
    )
    for key, catalog, unit in checks:
        value = benchmark.get(key)
        if value is None or catalog <= 0:
            continue
        measured = float(value)
        if measured < catalog * BENCHMARK_LOW_SHARE:
            notes.append(
                f"measured {measured:g} {unit} per GPU is {measured / catalog:.0%} of the catalog "
                f"{catalog:g} for {gpu_model.name}"
            )
        elif measured > catalog * BENCHMARK_HIGH_MULTIPLE:
            notes.append(f"measured {measured:g} {unit} per GPU is implausibly above the catalog {catalog:g}")
    return "; ".join(notes)[:300]


@dataclass(frozen=True)
class AgentReportResult:
    node: Node
    hardware_mismatch: str
    benchmark_flag: str
    deverified: bool


_MEASURED_SPECS = ("cpu_cores", "ram_gb", "disk_gb", "inet_down_mbps", "inet_up_mbps")
# A re-registration may move CPU, RAM, disk or bandwidth by this share (measurement noise, a resized disk partition)
# without counting as a change of what the node is; beyond it, or any change of GPU model or count, is a NodeChange.
NODE_SPEC_TOLERANCE = 0.10


def _gpu_summary(gpus: list[dict[str, Any]]) -> str:
    names = Counter(" or ".join(reported_names(gpu)) for gpu in gpus)
    return " + ".join(f"{count}× {name}" for name, count in sorted(names.items())) or "no GPUs"


def node_changes_describe(*, node: Node, report: dict[str, Any]) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """(changed figures, old, new) between the node as last reported and a new agent report; nothing on the first.

    GPUs: any change of model or count. CPU cores, RAM, disk and bandwidth: a change beyond NODE_SPEC_TOLERANCE of
    the previous figure (from nothing known to something is not a change).
    """
    if node.agent_registered_at is None:
        return [], {}, {}
    changed: list[str] = []
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    previous_gpus = list((node.agent_report or {}).get("gpus") or [])
    before, after = _gpu_summary(previous_gpus), _gpu_summary(list(report.get("gpus") or []))
    if previous_gpus and before != after:
        changed.append("gpus")
        old["gpus"], new["gpus"] = before, after
    for spec in _MEASURED_SPECS:
        if report.get(spec) is None:
            continue
        was, now = int(getattr(node, spec) or 0), int(report[spec])
        if was and abs(now - was) > was * NODE_SPEC_TOLERANCE:
            changed.append(spec)
            old[spec], new[spec] = was, now
    return changed, old, new


def node_agent_report_apply(*, node: Node, report: dict[str, Any], now: datetime | None = None) -> AgentReportResult:
    """Store a validated agent hardware report on `node` and check it against the registration.

    `report` is the agent's register body (see the agent API). Measured CPU, RAM, disk and network
    figures replace the declared ones (customers filter on them). The node goes online. A
    hardware mismatch takes verification away (audit-logged) until a later report matches and
    staff verify again.
    """
    now = now or timezone.now()
    gpu_model = node.gpu_model
    gpus = list(report.get("gpus") or [])
    mismatch = hardware_mismatch_describe(gpu_model=gpu_model, gpu_count=node.gpu_count, gpus=gpus)
    benchmark = report.get("benchmark") or {}
    flag = benchmark_flag_describe(gpu_model=gpu_model, benchmark=benchmark)
    with transaction.atomic():
        locked = Node.objects.select_for_update().select_related("provider").get(pk=node.pk)
        changed, old, new = node_changes_describe(node=locked, report=report)
        deverified = bool(mismatch or changed) and locked.verified
        if changed:
            NodeChange.objects.create(
                node=locked, provider=locked.provider, fields=changed, old=old, new=new, was_verified=locked.verified
            )
        fields = {
            "agent_report": report,
            "agent_registered_at": now,
            "hardware_mismatch": mismatch[:500],
            "benchmark_flag": flag,
            "status": NodeStatus.ONLINE,
            "last_heartbeat_at": now,
            "verified": locked.verified and not mismatch and not changed,
        }
        for spec in _MEASURED_SPECS:
            if report.get(spec) is not None:
                fields[spec] = int(report[spec])
        for name, value in fields.items():
            setattr(node, name, value)
        node.updated_at = now
        Node.objects.filter(pk=node.pk).update(updated_at=now, **fields)
        if deverified:
            reason = "hardware mismatch reported by the agent" if mismatch else "the agent reported other hardware"
            audit_log(
                actor=None,
                action="node.deverify",
                target=f"node:{node.pk}",
                details={"reason": reason, "mismatch": mismatch, "old": old, "new": new},
            )
        node_challenge_issue(node=node, reason=ChallengeReason.REGISTRATION)
    return AgentReportResult(node=node, hardware_mismatch=mismatch, benchmark_flag=flag, deverified=deverified)


def node_hardware_recheck(*, node: Node) -> str:
    """Compare the node's stored agent report with its (possibly edited) registration again.

    Call after the provider changes the GPU model or count. Updates `hardware_mismatch` and takes
    verification away when they no longer match. Returns the mismatch ('' when they match or the
    agent has not reported yet).
    """
    if node.agent_registered_at is None:
        return ""
    gpus = list((node.agent_report or {}).get("gpus") or [])
    mismatch = hardware_mismatch_describe(gpu_model=node.gpu_model, gpu_count=node.gpu_count, gpus=gpus)[:500]
    with transaction.atomic():
        locked = Node.objects.select_for_update().get(pk=node.pk)
        deverify = bool(mismatch) and locked.verified
        Node.objects.filter(pk=node.pk).update(
            hardware_mismatch=mismatch, verified=locked.verified and not mismatch, updated_at=timezone.now()
        )
        if deverify:
            audit_log(
                actor=None,
                action="node.deverify",
                target=f"node:{node.pk}",
                details={"reason": "registration no longer matches the agent's hardware", "mismatch": mismatch},
            )
    node.hardware_mismatch = mismatch
    node.verified = locked.verified and not mismatch
    return mismatch


def _require_staff(by: AbstractBaseUser | AnonymousUser) -> None:
    if not (by.is_authenticated and getattr(by, "is_staff", False)):
        raise PermissionDenied("Only staff may verify or deverify nodes.")


def _send_verified(node_id: int) -> None:
    for receiver, result in node_verified.send_robust(sender=Node, node_id=node_id):
        if isinstance(result, Exception):
            logger.error(
                "node_verified receiver %r failed for node %s",
                receiver,
                node_id,
                exc_info=(type(result), result, result.__traceback__),
            )


def node_verify(*, node: Node, by: Any) -> Node:
    """Staff: mark `node` verified. Refused (409) while the agent has never reported, a hardware
    mismatch stands or the latest compute challenge has not passed. Verifying a verified node changes nothing."""
    _require_staff(by)
    with transaction.atomic():
        locked = Node.objects.select_for_update().get(pk=node.pk)
        if locked.agent_registered_at is None:
            raise Conflict(
                f"Node {locked.name!r} cannot be verified: its agent has never reported its hardware.",
                code="agent_not_registered",
            )
        if locked.hardware_mismatch:
            raise Conflict(
                f"Node {locked.name!r} cannot be verified while its hardware does not match the "
                f"registration: {locked.hardware_mismatch}.",
                code="hardware_mismatch",
            )
        if locked.challenge_verdict != ChallengeState.PASSED:
            state = "failed" if locked.challenge_verdict == ChallengeState.FAILED else "not passed yet"
            raise Conflict(
                f"Node {locked.name!r} cannot be verified: its latest compute challenge {state}.",
                code="challenge_not_passed",
            )
        if not locked.verified:
            now = timezone.now()
            Node.objects.filter(pk=locked.pk).update(verified=True, verified_at=now, updated_at=now)
            locked.verified, locked.verified_at = True, now
            transaction.on_commit(lambda: _send_verified(locked.pk))
            NodeChange.objects.filter(node=locked, reviewed_at__isnull=True).update(reviewed_at=now, reviewed_by=by)
            audit_log(
                actor=by,
                action="node.verify",
                target=f"node:{locked.pk}",
                details={
                    "agent_report_at": locked.agent_registered_at.isoformat(),
                    "benchmark_flag": locked.benchmark_flag,
                },
            )
    node.verified, node.verified_at = locked.verified, locked.verified_at
    return node


def node_deverify(*, node: Node, by: Any, reason: str = "") -> Node:
    """Staff: take verification away from `node` (audit-logged with the reason)."""
    _require_staff(by)
    with transaction.atomic():
        updated = Node.objects.filter(pk=node.pk, verified=True).update(verified=False, updated_at=timezone.now())
        if updated:
            audit_log(actor=by, action="node.deverify", target=f"node:{node.pk}", details={"reason": reason[:500]})
    node.verified = False
    return node
