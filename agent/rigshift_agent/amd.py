"""AMD GPUs: through the `amdsmi` Python library (ROCm 6+) when it imports, else `rocm-smi --json`.

Both give the same fields as NVML: name (from the PCI database, see `rigshift_agent.naming`), device and
subsystem ids, VRAM, driver version, power limit, temperature and utilisation. amdsmi also counts compute
units, which tells apart the models that share a chip and a memory size (RX 6800 / 6800 XT / 6900 XT).

rocm-smi's JSON keys changed between releases: ROCm 5 prints "GPU ID" (the device id), "Card model" (the
subsystem device id) and "Card vendor" (the board maker's name); ROCm 6 prints "Device ID", "Subsystem ID",
"Card Model" (the device id again) and "Card Vendor" (AMD). Keys are matched without regard to case.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from typing import Any

from rigshift_agent import pciids
from rigshift_agent.gpu import Gpu, PciIdentity, named_gpu, optional_call
from rigshift_agent.pciids import AMD_VENDOR_ID, PciDatabase

ROCM_SMI_ARGS = ("--showallinfo", "--showmeminfo", "vram", "--json")
_HEX = re.compile(r"^(0x)?[0-9a-fA-F]{1,4}$")


def _int(value: Any) -> int | None:
    """An id or count as amdsmi/rocm-smi print it: 0x74a1, "0x74a1", 304, "N/A" (→ None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lower().startswith("0x") and _HEX.match(text):
        return int(text, 16)
    return int(text) if text.isdigit() else None


def _float(value: Any) -> float | None:
    try:
        return float(str(value).strip().rstrip("%"))
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------------ amdsmi
def _import_amdsmi() -> Any | None:
    try:
        return importlib.import_module("amdsmi")  # optional: ships with ROCm 6+, not on PyPI for every ROCm
    except ImportError:
        return None


def detect_amdsmi(amdsmi: Any | None = None, *, db: PciDatabase | None = None) -> tuple[list[Gpu], str]:
    """AMD GPUs through amdsmi; ([], "") when the library or the driver is missing."""
    lib: Any = amdsmi if amdsmi is not None else _import_amdsmi()
    if lib is None:
        return [], ""
    try:
        lib.amdsmi_init()
    except Exception:  # noqa: BLE001 — no amdgpu driver
        return [], ""
    try:
        db = db or pciids.load()
        handles = list(lib.amdsmi_get_processor_handles())
        gpus = [_amdsmi_gpu(lib, handle, index=index, db=db) for index, handle in enumerate(handles)]
        driver = optional_call(lib.amdsmi_get_gpu_driver_info, handles[0]) if handles else None
        return gpus, str((driver or {}).get("driver_version") or "")
    finally:
        optional_call(lib.amdsmi_shut_down)


def _amdsmi_vram_gb(amdsmi: Any, handle: Any) -> float:
    memory_type = getattr(getattr(amdsmi, "AmdSmiMemoryType", None), "VRAM", None)
    total = optional_call(amdsmi.amdsmi_get_gpu_memory_total, handle, memory_type) if memory_type is not None else None
    if isinstance(total, int) and total > 0:
        return round(total / 1024**3, 1)
    info = optional_call(amdsmi.amdsmi_get_gpu_vram_info, handle) or {}
    size_mb = _int(info.get("vram_size"))
    return round(size_mb / 1024, 1) if size_mb else 0.0


def _amdsmi_temperature(amdsmi: Any, handle: Any) -> float | None:
    kinds = getattr(amdsmi, "AmdSmiTemperatureType", None)
    metrics = getattr(amdsmi, "AmdSmiTemperatureMetric", None)
    if kinds is None or metrics is None:
        return None
    return _float(optional_call(amdsmi.amdsmi_get_temp_metric, handle, kinds.EDGE, metrics.CURRENT))


def _amdsmi_gpu(amdsmi: Any, handle: Any, *, index: int, db: PciDatabase) -> Gpu:
    asic = optional_call(amdsmi.amdsmi_get_gpu_asic_info, handle) or {}
    board = optional_call(amdsmi.amdsmi_get_gpu_board_info, handle) or {}
    ident = PciIdentity(
        vendor_id=_int(asic.get("vendor_id")) or AMD_VENDOR_ID,
        device_id=_int(asic.get("device_id")),
        vram_gb=_amdsmi_vram_gb(amdsmi, handle),
        raw_name=str(asic.get("market_name") or ""),
        subsystem_vendor=_int(asic.get("subvendor_id")),
        subsystem_device=_int(asic.get("subsystem_id")),
        compute_units=_int(asic.get("num_compute_units")),
        hints=[str(board.get("product_name") or "")],
    )
    power = optional_call(amdsmi.amdsmi_get_power_info, handle) or {}
    limit = _float(power.get("power_limit"))
    activity = optional_call(amdsmi.amdsmi_get_gpu_activity, handle) or {}
    busy = _float(activity.get("gfx_activity"))
    return named_gpu(
        db=db,
        index=index,
        vendor="amd",
        ident=ident,
        power_limit_w=(limit / 1e6 if limit > 10_000 else limit) if limit else None,  # microwatts in ROCm 6.0–6.2
        temperature_c=_amdsmi_temperature(amdsmi, handle),
        utilisation=busy / 100 if busy is not None else None,
    )


# ------------------------------------------------------------------------------------------------ rocm-smi
def _field(card: dict[str, str], *names: str) -> str:
    for name in names:
        value = card.get(name.lower(), "").strip()
        if value and value.upper() not in {"N/A", "UNKNOWN", "NOT SUPPORTED"}:
            return value
    return ""


def _rocm_ids(card: dict[str, str], db: PciDatabase) -> tuple[int | None, int | None, int | None]:
    """(device id, subsystem vendor, subsystem device) from a rocm-smi card of either key layout."""
    device = _int(_field(card, "device id", "gpu id"))
    subsystem_device = _int(_field(card, "subsystem id"))
    model = _int(_field(card, "card model"))
    if device is None and model is not None and db.device_name(AMD_VENDOR_ID, model):
        device = model  # ROCm 6 without "Device ID": "Card Model" is the device id
    elif subsystem_device is None and model is not None and model != device:
        subsystem_device = model  # ROCm 5: "Card model" is the subsystem device id
    subsystem_vendor = db.vendor_id(_field(card, "card vendor"))
    if subsystem_vendor == AMD_VENDOR_ID and device is not None and subsystem_device is not None:
        boards = db.subsystems_with_device(AMD_VENDOR_ID, device, subsystem_device)  # ROCm 6: AMD, not the maker
        subsystem_vendor = next(iter(boards)) if len(boards) == 1 else None
    return device, subsystem_vendor, subsystem_device


def parse_rocm_smi(output: str, *, db: PciDatabase | None = None) -> tuple[list[Gpu], str]:
    """Parse `rocm-smi --showallinfo --showmeminfo vram --json` into GPUs and the driver version."""
    data = json.loads(output)
    db = db or pciids.load()
    cards = sorted((k for k in data if k.lower().startswith("card")), key=lambda k: int(re.sub(r"\D", "", k) or 0))
    gpus = []
    for index, key in enumerate(cards):
        card = {str(k).lower(): str(v) for k, v in data[key].items()}
        device, subsystem_vendor, subsystem_device = _rocm_ids(card, db)
        vram_bytes = _int(_field(card, "vram total memory (b)")) or 0
        ident = PciIdentity(
            vendor_id=AMD_VENDOR_ID,
            device_id=device,
            vram_gb=round(vram_bytes / 1024**3, 1),
            raw_name=_field(card, "card series", "device name") or "AMD GPU",
            subsystem_vendor=subsystem_vendor,
            subsystem_device=subsystem_device,
        )
        busy = _float(_field(card, "gpu use (%)"))
        gpus.append(
            named_gpu(
                db=db,
                index=index,
                vendor="amd",
                ident=ident,
                power_limit_w=_float(_field(card, "max graphics package power (w)")),
                temperature_c=_float(
                    _field(card, "temperature (sensor edge) (c)", "temperature (sensor junction) (c)")
                ),
                utilisation=busy / 100 if busy is not None else None,
            )
        )
    system = {str(k).lower(): str(v) for k, v in (data.get("system") or {}).items()}
    return gpus, system.get("driver version", "")


def detect_amd() -> tuple[list[Gpu], str]:
    """AMD GPUs through rocm-smi; ([], "") when it is missing or fails."""
    exe = shutil.which("rocm-smi")
    if exe is None:
        return [], ""
    try:
        done = subprocess.run([exe, *ROCM_SMI_ARGS], capture_output=True, text=True, timeout=30, check=False)
        return parse_rocm_smi(done.stdout) if done.returncode == 0 else ([], "")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return [], ""
