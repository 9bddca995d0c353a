"""Reads of nodes for their provider: lists, one node (tenancy-checked), registration vs agent report."""

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from common.errors import NotFound
from marketplace.models import Node, Provider


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


def _reported_gpus(report: dict[str, Any]) -> tuple[str | None, int | None]:
    gpus = report.get("gpus")
    if isinstance(gpus, list) and gpus:
        names = sorted({str(g.get("name", "?")) for g in gpus if isinstance(g, dict)})
        count = 0
        for g in gpus:
            if isinstance(g, dict):
                raw_count = g.get("count", 1)
                count += raw_count if isinstance(raw_count, int) else 1
        return ", ".join(names) or None, count
    name = report.get("gpu_name") or report.get("gpu_model")
    reported_count = report.get("gpu_count")
    return (str(name) if name else None), (reported_count if isinstance(reported_count, int) else None)


def _same_gpu(*, node: Node, reported: str | None) -> bool | None:
    if reported is None:
        return None
    seen = reported.lower()
    names = [node.gpu_model.name, node.gpu_model.slug.replace("-", " "), *(node.gpu_model.aliases or [])]
    return any(str(n).lower() in seen or seen in str(n).lower() for n in names if n)


def node_spec_comparison(*, node: Node) -> list[SpecComparison]:
    """What the provider registered next to what the agent reported (empty report: nothing compared)."""
    report = node.agent_report if isinstance(node.agent_report, dict) else {}
    gpu_name, gpu_count = _reported_gpus(report)
    rows = [
        SpecComparison("GPU model", node.gpu_model.name, gpu_name, _same_gpu(node=node, reported=gpu_name)),
        SpecComparison(
            "GPU count",
            str(node.gpu_count),
            None if gpu_count is None else str(gpu_count),
            None if gpu_count is None else gpu_count == node.gpu_count,
        ),
    ]
    for field, label in (
        ("cpu_cores", "CPU cores"),
        ("ram_gb", "RAM (GB)"),
        ("disk_gb", "Disk (GB)"),
        ("inet_down_mbps", "Internet down (Mbps)"),
        ("inet_up_mbps", "Internet up (Mbps)"),
    ):
        registered = getattr(node, field)
        value = report.get(field)
        reported = None if value is None else str(value)
        matches = None
        if isinstance(value, int | float) and registered:
            matches = value >= registered * 0.9  # the agent may see a little less than the box's label
        rows.append(SpecComparison(label, str(registered), reported, matches))
    for key, label in (("driver_version", "Driver"), ("cuda_version", "CUDA"), ("benchmark", "Benchmark")):
        if report.get(key) is not None:
            rows.append(SpecComparison(label, "—", str(report[key]), None))
    return rows


def node_agent_command(*, server_url: str, token: str) -> str:
    """The exact command that starts the node agent with this node's token."""
    return f"rigshift-agent run --server {server_url} --token {token}"
