"""Reads of nodes for their provider: lists, one node (tenancy-checked), registration vs agent report."""

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from common.errors import NotFound
from marketplace.models import Node, Provider
from marketplace.services.verification import gpu_report_matches

# The one rule for unverified nodes, shown on the node form, the search page and in the API docs. The offer search
# (broker.selectors.offers.listed_now) and matching (JobRequirements.verified_only, default true) follow it.
UNVERIFIED_NODE_RULE = (
    "A listed node appears in customer search as soon as it is online, marked unverified until staff verify its "
    "hardware; until then only jobs that allow unverified nodes run on it (bookings ask for verified nodes unless "
    "the customer unticks it)."
)


def node_list_for_provider(*, provider: Provider) -> QuerySet[Node]:
    return Node.objects.filter(provider=provider).select_related("gpu_model").order_by("name", "id")


def node_get_for_provider(*, provider: Provider, node_id: int) -> Node:
    """The provider's own node; another provider's node (or none) is NotFound, so ids leak nothing."""
    node = Node.objects.select_related("gpu_model", "provider").filter(provider=provider, pk=node_id).first()
    if node is None:
        raise NotFound("Node not found.")
    return node


@dataclass(frozen=True)
class SpecComparison:
    label: str
    registered: str
    reported: str | None  # None: the agent has not reported this
    matches: bool | None  # None: nothing to compare yet


def _reported_gpus(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent reports one entry per detected GPU: {"index", "name", "vram_gb", ...}."""
    gpus = report.get("gpus")
    return [gpu for gpu in gpus if isinstance(gpu, dict)] if isinstance(gpus, list) else []


def node_spec_comparison(*, node: Node) -> list[SpecComparison]:
    """What the provider registered next to what the agent reported (no report yet: nothing compared).

    The authoritative verdict is `Node.hardware_mismatch`, set by the agent API; this is the detail.
    """
    report = node.agent_report if isinstance(node.agent_report, dict) else {}
    if not report:
        return [
            SpecComparison("GPU model", node.gpu_model.name, None, None),
            SpecComparison("GPU count", str(node.gpu_count), None, None),
        ]
    gpus = _reported_gpus(report)
    names = Counter(str(gpu.get("name") or "unnamed GPU") for gpu in gpus)
    same_model = all(gpu_report_matches(gpu=gpu, gpu_model=node.gpu_model) for gpu in gpus)
    rows = [
        SpecComparison(
            "GPU model",
            node.gpu_model.name,
            ", ".join(f"{count}× {name}" for name, count in names.most_common()) or "no GPUs",
            bool(gpus) and same_model,
        ),
        SpecComparison("GPU count", str(node.gpu_count), str(len(gpus)), len(gpus) == node.gpu_count),
    ]
    vrams = [float(gpu["vram_gb"]) for gpu in gpus if gpu.get("vram_gb") is not None]
    if vrams:
        catalog_vram = float(node.gpu_model.vram_gb)
        rows.append(
            SpecComparison(
                "VRAM per GPU (GB)", f"{catalog_vram:g}", f"{min(vrams):g}", min(vrams) >= catalog_vram * 0.9
            )
        )
    for field, label in (
        ("cpu_cores", "CPU cores"),
        ("ram_gb", "RAM (GB)"),
        ("disk_gb", "Disk (GB)"),
        ("inet_down_mbps", "Internet down (Mbps)"),
        ("inet_up_mbps", "Internet up (Mbps)"),
    ):
        value = report.get(field)
        # Measured figures replace the declared ones when the agent registers; shown for reference.
        rows.append(SpecComparison(label, str(getattr(node, field)), None if value is None else str(value), None))
    benchmark = report.get("benchmark") if isinstance(report.get("benchmark"), dict) else {}
    if benchmark and benchmark.get("tflops") is not None:
        rows.append(
            SpecComparison(
                "FP16 TFLOPS per GPU", f"{node.gpu_model.fp16_tflops:g} (catalog)", str(benchmark["tflops"]), None
            )
        )
    for key, label in (("driver_version", "Driver"), ("cuda_version", "CUDA"), ("agent_version", "Agent version")):
        if report.get(key):
            rows.append(SpecComparison(label, "—", str(report[key]), None))
    return rows


def node_agent_command(*, server_url: str, token: str) -> str:
    """The exact command that starts the node agent with this node's token, from a RigShift checkout where the
    agent is installed in `.venv` (`make run` and `make test` install it; AGENT_INSTALL_COMMAND does it anywhere)."""
    return f".venv/bin/rigshift-agent run --server {server_url} --token {token}"


# How to get `.venv/bin/rigshift-agent` on a machine with GPUs: the agent needs only Python 3.11 and requests.
AGENT_INSTALL_COMMAND = "python3 -m venv .venv && .venv/bin/pip install ./agent"
