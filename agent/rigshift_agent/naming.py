"""GPU names from the PCI database, in the catalog's spelling ("RTX 4090", "A100 80GB", "RX 7900 XTX").

The chip is identified by its PCI vendor and device id; the PCI database names it together with the models
sold on it: `Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]`. Where one chip carries several models,
they are told apart by what the tools measure — memory size and compute units (`SHARED_CHIP_MODELS`) — and
then by the board's subsystem name in the database (`PULSE RX 7900 XTX`) or the driver's marketing name.
What still cannot be told apart (rocm-smi reports no compute units: an RX 6800 XT and an RX 6900 XT both
have 16 GB) is reported as a list of candidates, and the server accepts any of them that the provider
registered. The PCI *subsystem vendor* only says who built the board (ASUS, MSI, Sapphire...): it never
changes what the GPU is, so add-in-board cards are named like reference cards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rigshift_agent.pciids import PciDatabase

# Models that share a chip (one PCI device id) with others: (VRAM sizes in GB as sold, compute units as the
# driver counts them per device). Sources: AMD product pages. MI250X/MI250 show as two devices (one per
# graphics compute die) of 64 GB and half the compute units each.
SHARED_CHIP_MODELS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "RX 470": ((4, 8), (32,)),
    "RX 480": ((4, 8), (36,)),
    "RX 570": ((4, 8), (32,)),
    "RX 570X": ((4, 8), (32,)),
    "RX 580": ((4, 8), (36,)),
    "RX 580X": ((4, 8), (36,)),
    "RX 590": ((8,), (36,)),
    "RX Vega 56": ((8,), (56,)),
    "RX Vega 64": ((8,), (64,)),
    "RX 5600 OEM": ((6,), (36,)),
    "RX 5600 XT": ((6,), (36,)),
    "RX 5700": ((8,), (36,)),
    "RX 5700 XT": ((8,), (40,)),
    "RX 6700": ((10,), (36,)),
    "RX 6700 XT": ((12,), (40,)),
    "RX 6750 XT": ((12,), (40,)),
    "RX 6800": ((16,), (60,)),
    "RX 6800 XT": ((16,), (72,)),
    "RX 6900 XT": ((16,), (80,)),
    "RX 7900 GRE": ((16,), (80,)),
    "RX 7900 XT": ((20,), (84,)),
    "RX 7900 XTX": ((24,), (96,)),
    "MI250X": ((128, 64), (220, 110)),
    "MI250": ((128, 64), (208, 104)),
}

_NAME_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bRTX\s*-?\s*A\s*(\d{4})\b", re.I), "RTX A{0}"),
    (re.compile(r"\b(RTX|GTX)\s*-?\s*(\d{3,4})\s*(TI|SUPER|D)?\b", re.I), "{0} {1} {2}"),
    (re.compile(r"\bCMP\s*-?\s*(\d{2,3})\s*HX\b", re.I), "CMP {0}HX"),
    (re.compile(r"\bP(10[246])\s*-\s*(\d{3})\b", re.I), "P{0}-{1}"),
    (re.compile(r"\b(H100|H200|A100|V100S|V100|L40S|L40|A40|A30|A10|L4|T4)\b", re.I), "{0}"),
    (re.compile(r"\bMI\s*(\d{3})\s*(X)?\b", re.I), "MI{0}{1}"),
    (re.compile(r"\bRX\s*-?\s*VEGA\s*(\d{2})\b", re.I), "RX Vega {0}"),
    (re.compile(r"\bRX\s*-?\s*(\d{3,4})\s*(XTX|XT|GRE|OEM|X)?\b", re.I), "RX {0} {1}"),
]
_SUFFIX = {"TI": "Ti", "SUPER": "SUPER", "D": "D"}
_MOBILE = re.compile(r"\d+M\b|\bMOBILE\b|\bLAPTOP\b|\bMAX-Q\b", re.I)


def catalog_base(raw: str) -> str | None:
    """The model a marketing name denotes, without memory size: "ASUS TUF Gaming GeForce RTX 3090 OC" →
    "RTX 3090", "Radeon RX 7900 XTX" → "RX 7900 XTX"; None when no pattern knows the name."""
    text = raw.replace("_", " ")
    for pattern, template in _NAME_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        parts = [(g or "") for g in match.groups()]
        if template.startswith("{0} {1}"):
            parts[0] = parts[0].upper()
            parts[2] = _SUFFIX.get(parts[2].upper(), "")
        else:
            parts = [p.upper() for p in parts]
        return re.sub(r"(\d) X$", r"\1X", " ".join(template.format(*parts).split()))
    return None


def complete_name(name: str, *, raw: str = "", vram_gb: float | None = None) -> str:
    """Add what tells apart catalog variants of one model: A100 40/80 GB, H100 SXM/PCIe, V100 and Polaris sizes."""
    upper = raw.upper()
    if name == "A100":
        if vram_gb is not None and vram_gb > 0:
            return "A100 80GB" if abs(vram_gb - 80) <= 8 else "A100 40GB" if abs(vram_gb - 40) <= 4 else name
        return "A100 80GB" if "80G" in upper else "A100 40GB"
    if name == "H100":
        return "H100 PCIe" if "PCIE" in upper else "H100 SXM"
    if name == "V100" and vram_gb is not None and vram_gb > 0:
        return "V100 32GB" if vram_gb > 20 else "V100 16GB"
    if name in {"RX 470", "RX 480", "RX 570", "RX 580"} and vram_gb is not None and vram_gb > 0:
        return f"{name} {'4GB' if vram_gb < 6 else '8GB'}"
    return name


def normalise_name(raw: str, *, vram_gb: float | None = None) -> str:
    """The catalog spelling of a GPU name as drivers and board partners write it.

    >>> normalise_name("NVIDIA GeForce RTX 3060 Ti LHR")
    'RTX 3060 Ti'
    >>> normalise_name("NVIDIA A100-SXM4-80GB")
    'A100 80GB'
    """
    base = catalog_base(raw)
    if base is None:
        return " ".join(raw.split())
    return complete_name(base, raw=raw, vram_gb=vram_gb)


def split_device_name(device_name: str) -> tuple[str, str]:
    """`Navi 31 [Radeon RX 7900 XT/7900 XTX]` → ("Navi 31", "Radeon RX 7900 XT/7900 XTX"); no brackets → (name, "")."""
    match = re.match(r"^(.*?)\s*\[(.+)\]\s*$", device_name)
    if match is None:
        return device_name.strip(), ""
    return match.group(1).strip(), match.group(2).strip()


def expand_marketing(text: str) -> list[str]:
    """The model names in a `/`-separated PCI database list, each written out in full.

    "Radeon RX 6800/6800 XT / 6900 XT" → ["Radeon RX 6800", "Radeon RX 6800 XT", "Radeon RX 6900 XT"];
    a part starting with a digit takes the words before the model number of the first part.
    """
    parts = [part.strip() for part in text.split("/") if part.strip()]
    if not parts:
        return []
    first = parts[0].split()
    prefix_len = next((i for i, word in enumerate(first) if word[0].isdigit()), len(first))
    prefix = " ".join(first[:prefix_len])
    return [f"{prefix} {part}".strip() if part[0].isdigit() else part for part in parts]


def _bases(text: str) -> list[str]:
    """Catalog bases named by a PCI name or marketing text (brackets and `/` lists expanded), in order; mobile
    parts are left out unless nothing else is named."""
    chip, marketing = split_device_name(text)
    for part in (marketing, chip):
        names = expand_marketing(part)
        desktop = [name for name in names if not _MOBILE.search(name)] or names
        found: list[str] = []
        for name in desktop:
            base = catalog_base(name)
            if base is not None and base not in found:
                found.append(base)
        if found:
            return found
    return []


def _fits(base: str, *, vram_gb: float | None, compute_units: int | None) -> bool:
    facts = SHARED_CHIP_MODELS.get(base)
    if facts is None:
        return True
    sizes, units = facts
    if vram_gb is not None and vram_gb > 0 and not any(abs(vram_gb - s) <= max(0.75, 0.08 * s) for s in sizes):
        return False
    return compute_units is None or compute_units <= 0 or compute_units in units


@dataclass(frozen=True)
class GpuNaming:
    name: str  # the catalog spelling when one model is left, else the PCI database's name of the chip
    candidates: tuple[str, ...] = ()  # several models the chip could be (empty when `name` is one)
    chip: str = ""  # "Navi 31", "AD102"
    source: str = "pci.ids"  # "pci.ids" or "driver name" (the chip is not in the database)


def name_gpu(
    *,
    db: PciDatabase,
    vendor_id: int,
    device_id: int | None,
    vram_gb: float | None = None,
    compute_units: int | None = None,
    subsystem: tuple[int, int] | None = None,
    hints: Sequence[str] = (),
) -> GpuNaming:
    """Name a GPU from its PCI ids, VRAM and compute units; `hints` are the driver's names of it (NVML name,
    amdsmi market name, rocm-smi card series), used only to choose among the chip's models."""
    device_name = db.device_name(vendor_id, device_id) if device_id is not None else None
    if device_name is None:
        raw = next((hint for hint in hints if hint.strip()), "unknown GPU")
        return GpuNaming(name=normalise_name(raw, vram_gb=vram_gb), source="driver name")
    chip, _marketing = split_device_name(device_name)
    left = _bases(device_name)
    fitting = [base for base in left if _fits(base, vram_gb=vram_gb, compute_units=compute_units)]
    left = fitting or left
    board = db.subsystem_name(vendor_id, device_id, *subsystem) if subsystem and device_id is not None else None
    for hint in (board, *hints):
        if len(left) > 1 and hint:
            named = [base for base in left if base in _bases(hint)]
            left = named or left
    raw = " ".join([device_name, *(h for h in hints if h)])
    names = tuple(complete_name(base, raw=raw, vram_gb=vram_gb) for base in left)
    if len(names) == 1:
        return GpuNaming(name=names[0], chip=chip)
    if not names:
        raw_hint = next((hint for hint in hints if catalog_base(hint)), device_name)
        return GpuNaming(name=normalise_name(raw_hint, vram_gb=vram_gb)[:100], chip=chip)
    return GpuNaming(name=device_name[:100], candidates=names, chip=chip)
