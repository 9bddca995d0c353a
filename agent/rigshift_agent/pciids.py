"""The PCI ID database (`pci.ids`): vendor, device and subsystem names of GPUs.

The system's copy is read (/usr/share/misc/pci.ids from Debian's `pci.ids` package, or
/usr/share/hwdata/pci.ids from `hwdata`), and the copy shipped with the agent (`data/pci.ids`: the NVIDIA and
AMD/ATI sections of the database, see its header) fills in what the system's lacks. Where both know an id,
the newer database (by its `Version:` header) names it: a card launched after the system's copy was
packaged is still recognised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

NVIDIA_VENDOR_ID = 0x10DE
AMD_VENDOR_ID = 0x1002
GPU_VENDORS = frozenset({NVIDIA_VENDOR_ID, AMD_VENDOR_ID})

SYSTEM_PATHS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")
SHIPPED_PATH = Path(__file__).with_name("data") / "pci.ids"

_VERSION = re.compile(r"^#\s*Version:\s*(\S+)")
_VENDOR = re.compile(r"^([0-9a-fA-F]{4})\s+(.+)$")
_DEVICE = re.compile(r"^\t([0-9a-fA-F]{4})\s+(.+)$")
_SUBSYSTEM = re.compile(r"^\t\t([0-9a-fA-F]{4})\s+([0-9a-fA-F]{4})\s+(.+)$")


@dataclass
class PciIds:
    """One pci.ids file: every vendor's name, and the devices and subsystems of the GPU vendors."""

    version: str = ""
    vendors: dict[int, str] = field(default_factory=dict)
    devices: dict[tuple[int, int], str] = field(default_factory=dict)
    subsystems: dict[tuple[int, int, int, int], str] = field(default_factory=dict)


def parse(text: str, *, keep: Iterable[int] = GPU_VENDORS) -> PciIds:
    """Parse pci.ids text; devices and subsystems are kept for the `keep` vendors only (the file is large)."""
    kept = frozenset(keep)
    ids = PciIds()
    vendor: int | None = None
    device: int | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            match = _VERSION.match(line)
            if match and not ids.version:
                ids.version = match.group(1)
            continue
        if line.startswith("C "):  # the device-class section closes the vendor list
            break
        if (match := _SUBSYSTEM.match(line)) is not None:
            if vendor in kept and device is not None:
                key = (vendor, device, int(match.group(1), 16), int(match.group(2), 16))
                ids.subsystems[key] = match.group(3).strip()
        elif (match := _DEVICE.match(line)) is not None:
            device = int(match.group(1), 16)
            if vendor in kept:
                ids.devices[(vendor, device)] = match.group(2).strip()
        elif (match := _VENDOR.match(line)) is not None:
            vendor, device = int(match.group(1), 16), None
            ids.vendors[vendor] = match.group(2).strip()
    return ids


class PciDatabase:
    """Lookups over one or more pci.ids files, the newest first."""

    def __init__(self, sources: Sequence[PciIds]) -> None:
        self.sources = sorted(sources, key=lambda ids: ids.version, reverse=True)

    @property
    def version(self) -> str:
        return self.sources[0].version if self.sources else ""

    def device_name(self, vendor_id: int, device_id: int) -> str | None:
        return self._first(lambda ids: ids.devices.get((vendor_id, device_id)))

    def subsystem_name(self, vendor_id: int, device_id: int, sub_vendor: int, sub_device: int) -> str | None:
        return self._first(lambda ids: ids.subsystems.get((vendor_id, device_id, sub_vendor, sub_device)))

    def vendor_name(self, vendor_id: int) -> str | None:
        return self._first(lambda ids: ids.vendors.get(vendor_id))

    def subsystems_with_device(self, vendor_id: int, device_id: int, sub_device: int) -> dict[int, str]:
        """{subsystem vendor: name} of the boards of a chip with this subsystem device id (when a tool reports
        the subsystem device but not its vendor)."""
        found: dict[int, str] = {}
        for ids in reversed(self.sources):  # newer databases overwrite older names
            for (v, d, sv, sd), name in ids.subsystems.items():
                if (v, d, sd) == (vendor_id, device_id, sub_device):
                    found[sv] = name
        return found

    def vendor_id(self, name: str) -> int | None:
        """The vendor id of a vendor name as tools print it ("Sapphire Technology Limited"), or None."""
        wanted = _vendor_key(name)
        if not wanted:
            return None
        for ids in self.sources:
            for vendor, vendor_name in ids.vendors.items():
                if _vendor_key(vendor_name) == wanted:
                    return vendor
        return None

    def _first(self, get: Callable[[PciIds], str | None]) -> str | None:
        for ids in self.sources:
            value = get(ids)
            if value:
                return str(value)
        return None


def _vendor_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def read(path: str | Path, *, keep: Iterable[int] = GPU_VENDORS) -> PciIds | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return parse(text, keep=keep)


@lru_cache(maxsize=4)
def load(paths: tuple[str, ...] = SYSTEM_PATHS, shipped: str = str(SHIPPED_PATH)) -> PciDatabase:
    """The system's pci.ids (the first of `paths` that exists) and the shipped copy."""
    sources: list[PciIds] = []
    for path in paths:
        ids = read(path)
        if ids is not None:
            sources.append(ids)
            break
    shipped_ids = read(shipped)
    if shipped_ids is not None:
        sources.append(shipped_ids)
    return PciDatabase(sources)
