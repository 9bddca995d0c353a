"""What the agent reports about a machine: its GPUs (named from the PCI database) and its host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rigshift_agent.naming import name_gpu
from rigshift_agent.pciids import PciDatabase


@dataclass
class Gpu:
    index: int
    name: str
    vram_gb: float
    pci_device_id: str = ""
    subsystem_vendor_id: str = ""
    subsystem_device_id: str = ""
    raw_name: str = ""
    vendor: str = "nvidia"
    board_partner: str = ""
    candidates: list[str] = field(default_factory=list)  # several models the chip may be (name is then the chip's)
    chip: str = ""
    compute_units: int | None = None
    power_limit_w: float | None = None
    temperature_c: float | None = None
    utilisation: float | None = None

    def report(self) -> dict[str, Any]:
        """The agent API's per-GPU registration fields."""
        report: dict[str, Any] = {
            "index": self.index,
            "name": self.name,
            "vram_gb": self.vram_gb,
            "pci_device_id": self.pci_device_id,
            "subsystem_vendor_id": self.subsystem_vendor_id,
        }
        if self.subsystem_device_id:
            report["subsystem_device_id"] = self.subsystem_device_id
        if self.candidates:
            report["candidates"] = list(self.candidates)
        return report


@dataclass
class Hardware:
    gpus: list[Gpu] = field(default_factory=list)
    driver_version: str = ""
    cuda_version: str = ""
    cpu_cores: int = 0
    ram_gb: int = 0
    disk_gb: int = 0
    inet_down_mbps: int = 0
    inet_up_mbps: int = 0
    source: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def optional_call(call: Any, *args: Any) -> Any:
    """`call(*args)`, or None where the driver does not support the field (the tools raise then)."""
    try:
        return call(*args)
    except Exception:  # noqa: BLE001 — NVML/amdsmi raise for fields a card or driver does not support
        return None


def hex_id(value: int | None) -> str:
    return f"0x{value:04x}" if value is not None else ""


@dataclass(frozen=True)
class PciIdentity:
    """How a tool identifies one GPU: PCI ids, memory, compute units and its own names for it."""

    vendor_id: int
    device_id: int | None
    vram_gb: float
    raw_name: str = ""
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None
    compute_units: int | None = None
    hints: Sequence[str] = ()


def named_gpu(*, db: PciDatabase, index: int, vendor: str, ident: PciIdentity, **telemetry: Any) -> Gpu:
    """A Gpu named from the PCI database; `telemetry` are power_limit_w, temperature_c, utilisation."""
    subsystem = None
    if ident.subsystem_vendor is not None and ident.subsystem_device is not None:
        subsystem = (ident.subsystem_vendor, ident.subsystem_device)
    naming = name_gpu(
        db=db,
        vendor_id=ident.vendor_id,
        device_id=ident.device_id,
        vram_gb=ident.vram_gb,
        compute_units=ident.compute_units,
        subsystem=subsystem,
        hints=[ident.raw_name, *ident.hints],
    )
    partner = db.vendor_name(ident.subsystem_vendor) if ident.subsystem_vendor is not None else None
    return Gpu(
        index=index,
        name=naming.name,
        vram_gb=ident.vram_gb,
        pci_device_id=hex_id(ident.device_id),
        subsystem_vendor_id=hex_id(ident.subsystem_vendor),
        subsystem_device_id=hex_id(ident.subsystem_device),
        raw_name=ident.raw_name,
        vendor=vendor,
        board_partner=partner or "",
        candidates=list(naming.candidates),
        chip=naming.chip,
        compute_units=ident.compute_units,
        **telemetry,
    )
