"""Hardware detection: NVML (NVIDIA), rocm-smi (AMD), the host from the stdlib, or a simulated profile.

Names are normalised to the catalog's spelling ("RTX 4090", "A100 80GB", "RX 580"). The GPU is identified
by its chip (the PCI *device* id, vendor 0x10de/0x1002) first and by the marketing name second. The PCI
*subsystem* vendor only says who built the board (ASUS, MSI, Gigabyte, ...): it is reported, never used to
identify the GPU, so add-in-board cards are recognised like reference cards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

NVIDIA_VENDOR_ID = 0x10DE
AMD_VENDOR_ID = 0x1002

# Board partners seen as PCI subsystem vendors (for display only).
SUBSYSTEM_VENDORS = {
    0x10DE: "NVIDIA",
    0x1002: "AMD",
    0x1043: "ASUS",
    0x1462: "MSI",
    0x1458: "Gigabyte",
    0x3842: "EVGA",
    0x19DA: "Zotac",
    0x1569: "Palit",
    0x10B0: "Gainward",
    0x196E: "PNY",
    0x1DA2: "Sapphire",
    0x148C: "PowerColor",
    0x1682: "XFX",
    0x103C: "HP",
    0x1028: "Dell",
    0x17AA: "Lenovo",
}

# Chip (PCI device id) → catalog name. Where one chip is sold with several memory sizes the name is
# completed from the VRAM (see `_complete_name`).
PCI_DEVICE_NAMES: dict[tuple[int, int], str] = {
    (NVIDIA_VENDOR_ID, 0x2B85): "RTX 5090",
    (NVIDIA_VENDOR_ID, 0x2684): "RTX 4090",
    (NVIDIA_VENDOR_ID, 0x2704): "RTX 4080",
    (NVIDIA_VENDOR_ID, 0x2203): "RTX 3090 Ti",
    (NVIDIA_VENDOR_ID, 0x2204): "RTX 3090",
    (NVIDIA_VENDOR_ID, 0x2208): "RTX 3080 Ti",
    (NVIDIA_VENDOR_ID, 0x2206): "RTX 3080",
    (NVIDIA_VENDOR_ID, 0x2216): "RTX 3080",
    (NVIDIA_VENDOR_ID, 0x2484): "RTX 3070",
    (NVIDIA_VENDOR_ID, 0x2488): "RTX 3070",
    (NVIDIA_VENDOR_ID, 0x2486): "RTX 3060 Ti",
    (NVIDIA_VENDOR_ID, 0x2489): "RTX 3060 Ti",
    (NVIDIA_VENDOR_ID, 0x2503): "RTX 3060",
    (NVIDIA_VENDOR_ID, 0x2504): "RTX 3060",
    (NVIDIA_VENDOR_ID, 0x1E04): "RTX 2080 Ti",
    (NVIDIA_VENDOR_ID, 0x1E07): "RTX 2080 Ti",
    (NVIDIA_VENDOR_ID, 0x1B06): "GTX 1080 Ti",
    (NVIDIA_VENDOR_ID, 0x1B81): "GTX 1070",
    (NVIDIA_VENDOR_ID, 0x1C03): "GTX 1060",
    (NVIDIA_VENDOR_ID, 0x2230): "RTX A6000",
    (NVIDIA_VENDOR_ID, 0x2231): "RTX A5000",
    (NVIDIA_VENDOR_ID, 0x24B0): "RTX A4000",
    (NVIDIA_VENDOR_ID, 0x2235): "A40",
    (NVIDIA_VENDOR_ID, 0x26B9): "L40S",
    (NVIDIA_VENDOR_ID, 0x26B5): "L40",
    (NVIDIA_VENDOR_ID, 0x27B8): "L4",
    (NVIDIA_VENDOR_ID, 0x1EB8): "T4",
    (NVIDIA_VENDOR_ID, 0x1DB1): "V100",
    (NVIDIA_VENDOR_ID, 0x1DB4): "V100",
    (NVIDIA_VENDOR_ID, 0x1DB5): "V100",
    (NVIDIA_VENDOR_ID, 0x1DB6): "V100",
    (NVIDIA_VENDOR_ID, 0x20B0): "A100",
    (NVIDIA_VENDOR_ID, 0x20B2): "A100",
    (NVIDIA_VENDOR_ID, 0x20B5): "A100",
    (NVIDIA_VENDOR_ID, 0x20F1): "A100",
    (NVIDIA_VENDOR_ID, 0x2330): "H100 SXM",
    (NVIDIA_VENDOR_ID, 0x2331): "H100 PCIe",
    (NVIDIA_VENDOR_ID, 0x2335): "H200",
    (AMD_VENDOR_ID, 0x67DF): "RX 580",
    (AMD_VENDOR_ID, 0x731F): "RX 5700 XT",
    (AMD_VENDOR_ID, 0x73BF): "RX 6800",
    (AMD_VENDOR_ID, 0x740C): "MI250X",
    (AMD_VENDOR_ID, 0x74A1): "MI300X",
}

_NAME_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bRTX\s*-?\s*A\s*(\d{4})\b", re.I), "RTX A{0}"),
    (re.compile(r"\b(RTX|GTX)\s*-?\s*(\d{3,4})\s*(TI|SUPER)?\b", re.I), "{0} {1} {2}"),
    (re.compile(r"\bCMP\s*-?\s*(\d{2,3})\s*HX\b", re.I), "CMP {0}HX"),
    (re.compile(r"\bP(10[246])\s*-\s*(\d{3})\b", re.I), "P{0}-{1}"),
    (re.compile(r"\b(H100|H200|A100|V100|L40S|L40|A40|A30|A10|L4|T4)\b", re.I), "{0}"),
    (re.compile(r"\bMI\s*(\d{3})\s*(X)?\b", re.I), "MI{0}{1}"),
    (re.compile(r"\bRX\s*-?\s*(\d{3,4})\s*(XT)?\b", re.I), "RX {0} {1}"),
]


def normalise_name(raw: str, *, vram_gb: float | None = None) -> str:
    """The catalog spelling of a GPU name as drivers and board partners write it.

    >>> normalise_name("NVIDIA GeForce RTX 3060 Ti LHR")
    'RTX 3060 Ti'
    >>> normalise_name("ASUS TUF Gaming GeForce RTX 3090 OC")
    'RTX 3090'
    >>> normalise_name("NVIDIA A100-SXM4-80GB")
    'A100 80GB'
    """
    text = raw.replace("_", " ")
    for pattern, template in _NAME_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        parts = [(g or "") for g in match.groups()]
        if template.startswith("{0} {1}"):
            parts[0] = parts[0].upper()
            parts[2] = {"TI": "Ti", "SUPER": "SUPER"}.get(parts[2].upper(), "")
        else:
            parts = [p.upper() for p in parts]
        name = " ".join(template.format(*parts).split())
        return _complete_name(name, raw=raw, vram_gb=vram_gb)
    return " ".join(raw.split())


def _complete_name(name: str, *, raw: str, vram_gb: float | None) -> str:
    """Add what tells apart cards sharing a chip name: A100 40/80 GB, H100 SXM/PCIe, RX 4/8 GB."""
    upper = raw.upper()
    if name == "A100":
        if vram_gb is not None:
            return "A100 80GB" if vram_gb > 60 else "A100 40GB"
        return "A100 80GB" if "80G" in upper else "A100 40GB"
    if name == "H100":
        return "H100 PCIe" if "PCIE" in upper else "H100 SXM"
    if name == "V100" and vram_gb is not None:
        return "V100 32GB" if vram_gb > 20 else "V100 16GB"
    if name in {"RX 470", "RX 480", "RX 570", "RX 580"} and vram_gb is not None:
        return f"{name} {'4GB' if vram_gb < 6 else '8GB'}"
    return name


def name_from_pci(*, vendor_id: int, device_id: int, raw: str, vram_gb: float | None) -> str | None:
    base = PCI_DEVICE_NAMES.get((vendor_id, device_id))
    if base is None:
        return None
    if base == "RX 580":  # Polaris 10/20: RX 470/480/570/580 share the chip; trust the name when it says which.
        named = normalise_name(raw, vram_gb=vram_gb)
        return named if named.startswith("RX ") else _complete_name(base, raw=raw, vram_gb=vram_gb)
    return _complete_name(base, raw=raw, vram_gb=vram_gb)


@dataclass
class Gpu:
    index: int
    name: str
    vram_gb: float
    pci_device_id: str = ""
    subsystem_vendor_id: str = ""
    raw_name: str = ""
    vendor: str = "nvidia"
    board_partner: str = ""
    power_limit_w: float | None = None
    temperature_c: float | None = None
    utilisation: float | None = None

    def report(self) -> dict[str, Any]:
        """The agent API's per-GPU registration fields."""
        return {
            "index": self.index,
            "name": self.name,
            "vram_gb": self.vram_gb,
            "pci_device_id": self.pci_device_id,
            "subsystem_vendor_id": self.subsystem_vendor_id,
        }


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


# ---------------------------------------------------------------------------------------------- simulate
@dataclass(frozen=True)
class SimModel:
    raw_name: str
    vram_gb: float
    vendor: str
    device_id: int
    subsystem_vendor: int
    tflops: float  # dense FP16 tensor TFLOPS (what `bench` would measure, roughly)
    mem_bandwidth_gbs: float
    power_w: float


SIM_MODELS: dict[str, SimModel] = {
    "RTX5090": SimModel("NVIDIA GeForce RTX 5090", 32, "nvidia", 0x2B85, 0x1043, 209.5, 1792, 575),
    "RTX4090": SimModel("NVIDIA GeForce RTX 4090", 24, "nvidia", 0x2684, 0x1462, 165.2, 1008, 450),
    "RTX3090": SimModel("NVIDIA GeForce RTX 3090", 24, "nvidia", 0x2204, 0x3842, 71.0, 936, 350),
    "RTX3080": SimModel("NVIDIA GeForce RTX 3080", 10, "nvidia", 0x2206, 0x1458, 59.5, 760, 320),
    "RTX3070": SimModel("NVIDIA GeForce RTX 3070", 8, "nvidia", 0x2484, 0x19DA, 40.6, 448, 220),
    "RTX3060TI": SimModel("NVIDIA GeForce RTX 3060 Ti", 8, "nvidia", 0x2489, 0x1569, 32.4, 448, 200),
    "GTX1080TI": SimModel("NVIDIA GeForce GTX 1080 Ti", 11, "nvidia", 0x1B06, 0x3842, 0.2, 484, 250),
    "GTX1070": SimModel("NVIDIA GeForce GTX 1070", 8, "nvidia", 0x1B81, 0x1462, 0.1, 256, 150),
    "RTXA6000": SimModel("NVIDIA RTX A6000", 48, "nvidia", 0x2230, 0x10DE, 154.8, 768, 300),
    "RTXA5000": SimModel("NVIDIA RTX A5000", 24, "nvidia", 0x2231, 0x10DE, 111.1, 768, 230),
    "RTXA4000": SimModel("NVIDIA RTX A4000", 16, "nvidia", 0x24B0, 0x10DE, 76.7, 448, 140),
    "A40": SimModel("NVIDIA A40", 48, "nvidia", 0x2235, 0x10DE, 149.7, 696, 300),
    "L40S": SimModel("NVIDIA L40S", 48, "nvidia", 0x26B9, 0x10DE, 362.1, 864, 350),
    "L4": SimModel("NVIDIA L4", 24, "nvidia", 0x27B8, 0x10DE, 121.0, 300, 72),
    "T4": SimModel("Tesla T4", 16, "nvidia", 0x1EB8, 0x10DE, 65.0, 320, 70),
    "V100": SimModel("Tesla V100-SXM2-32GB", 32, "nvidia", 0x1DB5, 0x10DE, 125.0, 900, 300),
    "A10040GB": SimModel("NVIDIA A100-SXM4-40GB", 40, "nvidia", 0x20B0, 0x10DE, 312.0, 1555, 400),
    "A10080GB": SimModel("NVIDIA A100-SXM4-80GB", 80, "nvidia", 0x20B2, 0x10DE, 312.0, 2039, 400),
    "H100SXM": SimModel("NVIDIA H100 80GB HBM3", 80, "nvidia", 0x2330, 0x10DE, 989.4, 3350, 700),
    "H100PCIE": SimModel("NVIDIA H100 PCIe", 80, "nvidia", 0x2331, 0x10DE, 756.0, 2000, 350),
    "H200": SimModel("NVIDIA H200", 141, "nvidia", 0x2335, 0x10DE, 989.4, 4800, 700),
    "RX580": SimModel("Radeon RX 580 Series", 8, "amd", 0x67DF, 0x1DA2, 0.0, 256, 185),
    "RX5700XT": SimModel("Radeon RX 5700 XT", 8, "amd", 0x731F, 0x1DA2, 0.0, 448, 225),
    "RX6800": SimModel("Radeon RX 6800", 16, "amd", 0x73BF, 0x1002, 0.0, 512, 250),
    "MI250X": SimModel("AMD Instinct MI250X", 128, "amd", 0x740C, 0x1002, 383.0, 3277, 560),
    "MI300X": SimModel("AMD Instinct MI300X", 192, "amd", 0x74A1, 0x1002, 1307.4, 5300, 750),
}
SIM_ALIASES = {"A100": "A10080GB", "A10080G": "A10080GB", "A100SXM": "A10080GB", "H100": "H100SXM", "A6000": "RTXA6000"}
SIM_ALIASES |= {"A5000": "RTXA5000", "A4000": "RTXA4000", "V10032GB": "V100", "RX5708GB": "RX580", "RX5808GB": "RX580"}

_PROFILE = re.compile(r"^\s*(\d{1,2})\s*[xX×]\s*(.+?)\s*$")


def _sim_key(model: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", model.upper())


def parse_profile(profile: str) -> tuple[int, str, SimModel]:
    """`8xRTX4090` → (8, "RTX4090", model). Raises ValueError with the known models on bad input."""
    match = _PROFILE.match(profile)
    if match is None:
        raise ValueError(f"simulate profile {profile!r} is not COUNTxMODEL, for example 8xRTX4090 or 2xA100-80GB")
    count = int(match.group(1))
    if not 1 <= count <= 16:
        raise ValueError(f"simulate profile {profile!r}: a node has between 1 and 16 GPUs")
    key = _sim_key(match.group(2))
    key = SIM_ALIASES.get(key, key)
    model = SIM_MODELS.get(key)
    if model is None:
        known = ", ".join(sorted(SIM_MODELS))
        raise ValueError(f"simulate profile {profile!r}: unknown GPU model {match.group(2)!r}; known: {known}")
    return count, key, model


def simulate(profile: str) -> Hardware:
    """A plausible host for the profile: the GPUs as NVML/rocm-smi would name them, and a matching host."""
    count, _key, model = parse_profile(profile)
    vendor_id = NVIDIA_VENDOR_ID if model.vendor == "nvidia" else AMD_VENDOR_ID
    name = name_from_pci(vendor_id=vendor_id, device_id=model.device_id, raw=model.raw_name, vram_gb=model.vram_gb)
    gpus = [
        Gpu(
            index=i,
            name=name or normalise_name(model.raw_name, vram_gb=model.vram_gb),
            vram_gb=model.vram_gb,
            pci_device_id=f"0x{model.device_id:04x}",
            subsystem_vendor_id=f"0x{model.subsystem_vendor:04x}",
            raw_name=model.raw_name,
            vendor=model.vendor,
            board_partner=SUBSYSTEM_VENDORS.get(model.subsystem_vendor, ""),
            power_limit_w=model.power_w,
            temperature_c=40.0,
            utilisation=0.0,
        )
        for i in range(count)
    ]
    return Hardware(
        gpus=gpus,
        driver_version="550.54.15" if model.vendor == "nvidia" else "6.7.0",
        cuda_version="12.4" if model.vendor == "nvidia" else "",
        **simulated_host(count=count, vram_gb=model.vram_gb),
        source="simulated",
    )


def simulated_host(*, count: int, vram_gb: float) -> dict[str, int]:
    """Host specs of a simulated node (the demo market registers its nodes with the same figures)."""
    return {
        "cpu_cores": 8 * count if vram_gb >= 40 else 4 * count,
        "ram_gb": int(max(32, 2 * vram_gb * count)),
        "disk_gb": 500 * count,
        "inet_down_mbps": 1000,
        "inet_up_mbps": 1000,
    }


def simulated_benchmark(profile: str) -> dict[str, float]:
    """What `bench` would measure on the profile's cards: ~90% of the datasheet, as real runs do."""
    _count, _key, model = parse_profile(profile)
    return {"tflops": round(model.tflops * 0.9, 1), "mem_bandwidth_gbs": round(model.mem_bandwidth_gbs * 0.85, 1)}


# ---------------------------------------------------------------------------------------------- host
def host_specs(*, disk_path: str = "/") -> dict[str, int]:
    cores = os.cpu_count() or 0
    ram_gb = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    ram_gb = round(int(line.split()[1]) / 1024 / 1024)
                    break
    except OSError:
        pass
    try:
        disk_gb = int(shutil.disk_usage(disk_path).total / 1e9)
    except OSError:
        disk_gb = 0
    return {"cpu_cores": cores, "ram_gb": ram_gb, "disk_gb": disk_gb, "inet_down_mbps": 0, "inet_up_mbps": 0}


# ---------------------------------------------------------------------------------------------- NVIDIA
def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception:  # noqa: BLE001 — NVML raises for fields a card/driver does not support
        return None


def detect_nvidia(nvml: Any | None = None) -> tuple[list[Gpu], str, str]:
    """GPUs through NVML; ([], "", "") when there is no NVIDIA driver. `nvml` is pynvml (or a fake)."""
    if nvml is None:
        try:
            import pynvml  # optional dependency (nvidia-ml-py)
        except ImportError:
            return [], "", ""
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception:  # noqa: BLE001 — no driver / no device
        return [], "", ""
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda_raw = _optional(nvml.nvmlSystemGetCudaDriverVersion)
        cuda = f"{cuda_raw // 1000}.{(cuda_raw % 1000) // 10}" if isinstance(cuda_raw, int) and cuda_raw else ""
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            raw = _text(nvml.nvmlDeviceGetName(handle))
            vram_gb = round(nvml.nvmlDeviceGetMemoryInfo(handle).total / 1024**3, 1)
            pci = nvml.nvmlDeviceGetPciInfo(handle)
            device_id = (int(pci.pciDeviceId) >> 16) & 0xFFFF
            vendor_id = int(pci.pciDeviceId) & 0xFFFF
            subsystem_vendor = int(pci.pciSubSystemId) & 0xFFFF
            power = _optional(nvml.nvmlDeviceGetPowerManagementLimit, handle)
            temp = _optional(nvml.nvmlDeviceGetTemperature, handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
            util = _optional(nvml.nvmlDeviceGetUtilizationRates, handle)
            name = name_from_pci(vendor_id=vendor_id, device_id=device_id, raw=raw, vram_gb=vram_gb)
            gpus.append(
                Gpu(
                    index=index,
                    name=name or normalise_name(raw, vram_gb=vram_gb),
                    vram_gb=vram_gb,
                    pci_device_id=f"0x{device_id:04x}",
                    subsystem_vendor_id=f"0x{subsystem_vendor:04x}",
                    raw_name=raw,
                    vendor="nvidia",
                    board_partner=SUBSYSTEM_VENDORS.get(subsystem_vendor, ""),
                    power_limit_w=power / 1000 if isinstance(power, int | float) else None,
                    temperature_c=float(temp) if isinstance(temp, int | float) else None,
                    utilisation=float(util.gpu) / 100 if util is not None else None,
                )
            )
        return gpus, driver, cuda
    finally:
        _optional(nvml.nvmlShutdown)


# ---------------------------------------------------------------------------------------------- AMD
def parse_rocm_smi(output: str) -> list[Gpu]:
    """Parse `rocm-smi --showproductname --showmeminfo vram --json`."""
    data = json.loads(output)
    gpus = []
    cards = sorted((k for k in data if k.lower().startswith("card")), key=lambda k: int(re.sub(r"\D", "", k) or 0))
    for index, key in enumerate(cards):
        card = {k.lower(): str(v) for k, v in data[key].items()}
        raw = card.get("card series") or card.get("card model") or "AMD GPU"
        vram_bytes = card.get("vram total memory (b)", "0")
        vram_gb = round(int(vram_bytes) / 1024**3, 1) if vram_bytes.isdigit() else 0.0
        model = card.get("card model", "")
        device_id = int(model, 16) if re.fullmatch(r"0x[0-9a-fA-F]+", model) else None
        named = None
        if device_id is not None:
            named = name_from_pci(vendor_id=AMD_VENDOR_ID, device_id=device_id, raw=raw, vram_gb=vram_gb)
        gpus.append(
            Gpu(
                index=index,
                name=named or normalise_name(raw, vram_gb=vram_gb),
                vram_gb=vram_gb,
                pci_device_id=f"0x{device_id:04x}" if device_id is not None else "",
                subsystem_vendor_id="",
                raw_name=raw,
                vendor="amd",
                board_partner=card.get("card vendor", ""),
            )
        )
    return gpus


def detect_amd() -> list[Gpu]:
    exe = shutil.which("rocm-smi")
    if exe is None:
        return []
    try:
        done = subprocess.run(
            [exe, "--showproductname", "--showmeminfo", "vram", "--json"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return parse_rocm_smi(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []


def detect(*, simulate_profile: str | None = None, nvml: Any | None = None) -> Hardware:
    """What this machine has (or the simulated profile)."""
    if simulate_profile:
        return simulate(simulate_profile)
    gpus, driver, cuda = detect_nvidia(nvml)
    source = "nvml" if gpus else "none"
    if not gpus:
        gpus = detect_amd()
        source = "rocm-smi" if gpus else "none"
    return Hardware(gpus=gpus, driver_version=driver, cuda_version=cuda, source=source, **host_specs())
