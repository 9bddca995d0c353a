"""Hardware verification: name matching, mismatch and benchmark checks, staff verify/deverify."""

from typing import Any

import pytest
from django.utils import timezone

from common.errors import Conflict, PermissionDenied
from common.models import AuditLog
from marketplace.models import GPUModel, Node
from marketplace.services.verification import (
    benchmark_flag_describe,
    gpu_name_matches,
    hardware_mismatch_describe,
    name_normalise,
    node_agent_report_apply,
    node_deverify,
    node_hardware_recheck,
    node_verify,
)
from tests.challenge_helpers import pass_challenge
from tests.factories import GPUModelFactory, NodeFactory, UserFactory

pytestmark = pytest.mark.django_db


def gpus(count: int, name: str = "NVIDIA GeForce RTX 4090", vram_gb: float = 23.99) -> list[dict[str, Any]]:
    return [{"index": i, "name": name, "vram_gb": vram_gb} for i in range(count)]


@pytest.fixture
def rtx4090() -> GPUModel:
    return GPUModel.objects.get(slug="rtx-4090")


def test_name_normalise_drops_vendor_words() -> None:
    assert name_normalise("NVIDIA GeForce RTX 4090") == name_normalise("GeForce RTX 4090") == "rtx4090"


@pytest.mark.parametrize(
    ("name", "slug", "expected"),
    [
        ("NVIDIA GeForce RTX 4090", "rtx-4090", True),
        ("GeForce RTX 4090", "rtx-4090", True),
        ("NVIDIA GeForce RTX 3090", "rtx-4090", False),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb", True),
        ("NVIDIA A100-SXM4-80GB", "a100-40gb", False),
        ("Tesla T4", "t4", True),
        ("Something Unknown 9000", "rtx-4090", False),
    ],
)
def test_gpu_name_matches_uses_the_catalog_matcher(name: str, slug: str, expected: bool) -> None:
    assert gpu_name_matches(name=name, gpu_model=GPUModel.objects.get(slug=slug)) is expected


def test_name_outside_the_catalog_falls_back_to_normalised_names() -> None:
    custom = GPUModelFactory(slug="zx-9", name="Zeta ZX 9", aliases=["ZX9 Pro"])
    assert gpu_name_matches(name="Zeta ZX-9", gpu_model=custom)
    assert gpu_name_matches(name="zx9 pro", gpu_model=custom)
    assert not gpu_name_matches(name="Zeta ZX 8", gpu_model=custom)


def test_reported_vram_picks_the_registered_memory_variant() -> None:
    rx580_4gb = GPUModel.objects.get(slug="rx-580-4gb")  # a bare "RX 580" means the 8 GB card
    assert gpu_name_matches(name="AMD Radeon RX 580 Series", gpu_model=rx580_4gb, vram_gb=4.0)
    assert not gpu_name_matches(name="AMD Radeon RX 580 Series", gpu_model=rx580_4gb, vram_gb=8.0)
    assert not gpu_name_matches(name="AMD Radeon RX 580 Series", gpu_model=rx580_4gb)


def test_mismatch_messages(rtx4090: GPUModel) -> None:
    assert hardware_mismatch_describe(gpu_model=rtx4090, gpu_count=8, gpus=gpus(8)) == ""
    assert (
        hardware_mismatch_describe(gpu_model=rtx4090, gpu_count=8, gpus=gpus(6))
        == "registered 8× GeForce RTX 4090, agent sees 6× GeForce RTX 4090"
    )
    mixed = gpus(4) + gpus(4, name="NVIDIA GeForce RTX 3090")
    assert (
        hardware_mismatch_describe(gpu_model=rtx4090, gpu_count=8, gpus=mixed)
        == "registered 8× GeForce RTX 4090, agent sees 4× GeForce RTX 3090 + 4× GeForce RTX 4090"
    )
    assert (
        hardware_mismatch_describe(gpu_model=rtx4090, gpu_count=2, gpus=[])
        == "registered 2× GeForce RTX 4090, agent sees no GPUs"
    )
    assert "Mystery Card" in hardware_mismatch_describe(
        gpu_model=rtx4090, gpu_count=1, gpus=[{"index": 0, "name": "Mystery Card", "vram_gb": 24}]
    )
    short = hardware_mismatch_describe(gpu_model=rtx4090, gpu_count=2, gpus=gpus(2, vram_gb=12))
    assert "12 GB" in short and "24 GB" in short


def test_benchmark_flag(rtx4090: GPUModel) -> None:
    assert benchmark_flag_describe(gpu_model=rtx4090, benchmark={"tflops": 150.2, "mem_bandwidth_gbs": 900}) == ""
    assert benchmark_flag_describe(gpu_model=rtx4090, benchmark=None) == ""
    assert benchmark_flag_describe(gpu_model=rtx4090, benchmark={"tflops": None}) == ""
    low = benchmark_flag_describe(gpu_model=rtx4090, benchmark={"tflops": 60.0})
    assert "60 FP16 TFLOPS" in low and "36%" in low and "GeForce RTX 4090" in low
    slow_memory = benchmark_flag_describe(gpu_model=rtx4090, benchmark={"tflops": 150, "mem_bandwidth_gbs": 300})
    assert "memory bandwidth" in slow_memory
    assert "implausibly" in benchmark_flag_describe(gpu_model=rtx4090, benchmark={"tflops": 900})


def test_verify_refuses_a_node_whose_agent_never_reported(rtx4090: GPUModel) -> None:
    node = NodeFactory(gpu_model=rtx4090, verified=False, agent_registered_at=None)
    with pytest.raises(Conflict, match="never reported"):
        node_verify(node=node, by=UserFactory(is_staff=True))


def test_verify_refuses_while_mismatch_then_allows_after_a_matching_report(rtx4090: GPUModel) -> None:
    node = NodeFactory(gpu_model=rtx4090, gpu_count=8, verified=False)
    staff = UserFactory(is_staff=True)
    result = node_agent_report_apply(node=node, report={"gpus": gpus(6), "cpu_cores": 16})
    assert result.hardware_mismatch == "registered 8× GeForce RTX 4090, agent sees 6× GeForce RTX 4090"
    with pytest.raises(Conflict) as refused:
        node_verify(node=node, by=staff)
    assert refused.value.code == "hardware_mismatch"
    node_agent_report_apply(node=node, report={"gpus": gpus(8)})
    with pytest.raises(Conflict) as refused:
        node_verify(node=node, by=staff)
    assert refused.value.code == "challenge_not_passed"  # the registration's compute challenge is still open
    pass_challenge(node)
    node_verify(node=node, by=staff)
    node.refresh_from_db()
    assert node.verified and node.verified_at is not None and node.cpu_cores == 16
    assert AuditLog.objects.filter(action="node.verify", actor_id=staff.pk).count() == 1
    node_verify(node=node, by=staff)  # verifying a verified node changes nothing
    assert AuditLog.objects.filter(action="node.verify", actor_id=staff.pk).count() == 1


def test_verify_and_deverify_are_staff_only(rtx4090: GPUModel) -> None:
    node = NodeFactory(gpu_model=rtx4090, verified=False, agent_registered_at=timezone.now())
    with pytest.raises(PermissionDenied):
        node_verify(node=node, by=UserFactory())
    with pytest.raises(PermissionDenied):
        node_deverify(node=node, by=node.provider.user)
    assert Node.objects.get(pk=node.pk).verified is False


def test_deverify_is_audit_logged_with_reason(rtx4090: GPUModel) -> None:
    node = NodeFactory(gpu_model=rtx4090, verified=True)
    staff = UserFactory(is_staff=True)
    node_deverify(node=node, by=staff, reason="benchmark far below catalog")
    assert Node.objects.get(pk=node.pk).verified is False
    log = AuditLog.objects.get(action="node.deverify", actor_id=staff.pk)
    assert log.details == {"reason": "benchmark far below catalog"}
    node_deverify(node=node, by=staff)  # already unverified: no second entry
    assert AuditLog.objects.filter(action="node.deverify").count() == 1


def test_recheck_after_the_registration_changes(rtx4090: GPUModel) -> None:
    node = NodeFactory(gpu_model=rtx4090, gpu_count=8, verified=False)
    assert node_hardware_recheck(node=node) == ""  # the agent has not reported yet
    node_agent_report_apply(node=node, report={"gpus": gpus(6)})
    assert Node.objects.get(pk=node.pk).hardware_mismatch
    Node.objects.filter(pk=node.pk).update(gpu_count=6)  # the provider corrects the registration
    node.refresh_from_db()
    assert node_hardware_recheck(node=node) == ""
    pass_challenge(node)
    node_verify(node=node, by=UserFactory(is_staff=True))
    Node.objects.filter(pk=node.pk).update(gpu_count=4)
    node.refresh_from_db()
    assert node_hardware_recheck(node=node) == "registered 4× GeForce RTX 4090, agent sees 6× GeForce RTX 4090"
    node.refresh_from_db()
    assert node.verified is False


# --- node changes (issue 12 point 4) ---------------------------------------------------------------------------------


def _verified_node(rtx4090: GPUModel) -> tuple[Node, Any]:
    node: Any = NodeFactory(gpu_model=rtx4090, gpu_count=2, verified=False, agent_registered_at=None)
    staff = UserFactory(is_staff=True)
    node_agent_report_apply(
        node=node, report={"gpus": gpus(2), "cpu_cores": 32, "ram_gb": 128, "disk_gb": 2000, "inet_up_mbps": 500}
    )
    pass_challenge(node)
    node_verify(node=node, by=staff)
    node.refresh_from_db()
    assert node.verified
    return node, staff


def test_reregistration_claiming_other_hardware_drops_verification_with_both_sides(rtx4090: GPUModel) -> None:
    from marketplace.models import NodeChange

    node, staff = _verified_node(rtx4090)
    # the attack: the same verified node re-registers claiming 4,096 cores and 64 TB of RAM
    result = node_agent_report_apply(node=node, report={"gpus": gpus(2), "cpu_cores": 4096, "ram_gb": 64_000})
    assert result.deverified and not Node.objects.get(pk=node.pk).verified
    change = NodeChange.objects.get(node=node)
    assert change.fields == ["cpu_cores", "ram_gb"] and change.was_verified
    assert change.old == {"cpu_cores": 32, "ram_gb": 128} and change.new == {"cpu_cores": 4096, "ram_gb": 64_000}
    assert change.reviewed_at is None
    log = AuditLog.objects.filter(action="node.deverify", target=f"node:{node.pk}").latest("pk")
    assert log.details["old"] == change.old
    # staff look again: verifying marks the change reviewed
    pass_challenge(node)
    node_verify(node=node, by=staff)
    change.refresh_from_db()
    assert change.reviewed_at is not None and change.reviewed_by_id == staff.pk


def test_gpu_change_is_a_node_change_and_small_drift_is_not(rtx4090: GPUModel) -> None:
    from marketplace.models import NodeChange

    node, _ = _verified_node(rtx4090)
    # within the documented tolerance (±10%): measurement noise, still verified, no change recorded
    node_agent_report_apply(
        node=node, report={"gpus": gpus(2), "cpu_cores": 32, "ram_gb": 126, "disk_gb": 1900, "inet_up_mbps": 540}
    )
    assert Node.objects.get(pk=node.pk).verified and not NodeChange.objects.exists()
    # another GPU model with the same count (a mismatch too) is a change of what the node is
    node.refresh_from_db()
    node_agent_report_apply(node=node, report={"gpus": gpus(2, name="NVIDIA GeForce RTX 3090")})
    change = NodeChange.objects.get(node=node)
    assert change.fields == ["gpus"] and "3090" in change.new["gpus"] and "4090" in change.old["gpus"]
    assert not Node.objects.get(pk=node.pk).verified
