"""Hardware detection: NVML (NVIDIA), amdsmi or rocm-smi (AMD), the host from the stdlib, or a simulated profile.

GPUs are named from the PCI database by their chip (vendor and device id), memory size and compute units,
in the catalog's spelling ("RTX 4090", "A100 80GB", "RX 7900 XTX"): see `rigshift_agent.naming`. The PCI
*subsystem* names the board and its maker (ASUS, MSI, Sapphire...); it only helps to choose among models
that share a chip, so add-in-board cards are recognised like reference cards.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

from rigshift_agent import pciids
from rigshift_agent.amd import detect_amd, detect_amdsmi, parse_rocm_smi
from rigshift_agent.gpu import Gpu, Hardware, PciIdentity, named_gpu, optional_call, text
from rigshift_agent.naming import normalise_name
from rigshift_agent.pciids import AMD_VENDOR_ID, NVIDIA_VENDOR_ID, PciDatabase

__all__ = [
    "AMD_VENDOR_ID",
    "NVIDIA_VENDOR_ID",
    "Gpu",
    "Hardware",
    "detect",
    "detect_amd",
    "detect_amdsmi",
    "detect_nvidia",
    "normalise_name",
    "parse_rocm_smi",
]


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
    fp32_tflops: float = 0.0  # where FP32 is faster than FP16 (Pascal GeForce, Polaris, RDNA without ROCm)

    @property
    def matmul_tflops(self) -> float:
        """What the compute challenge's FP16 matrix multiply runs at on this card (the faster of the two paths)."""
        return max(self.tflops, self.fp32_tflops)


SIM_MODELS: dict[str, SimModel] = {
    "RTX5090": SimModel("NVIDIA GeForce RTX 5090", 32, "nvidia", 0x2B85, 0x1043, 209.5, 1792, 575),
    "RTX4090": SimModel("NVIDIA GeForce RTX 4090", 24, "nvidia", 0x2684, 0x1462, 165.2, 1008, 450),
    "RTX3090": SimModel("NVIDIA GeForce RTX 3090", 24, "nvidia", 0x2204, 0x3842, 71.0, 936, 350),
    "RTX3080": SimModel("NVIDIA GeForce RTX 3080", 10, "nvidia", 0x2206, 0x1458, 59.5, 760, 320),
    "RTX3070": SimModel("NVIDIA GeForce RTX 3070", 8, "nvidia", 0x2484, 0x19DA, 40.6, 448, 220),
    "RTX3060TI": SimModel("NVIDIA GeForce RTX 3060 Ti", 8, "nvidia", 0x2489, 0x1569, 32.4, 448, 200),
    "GTX1080TI": SimModel("NVIDIA GeForce GTX 1080 Ti", 11, "nvidia", 0x1B06, 0x3842, 0.2, 484, 250, 11.3),
    "GTX1070": SimModel("NVIDIA GeForce GTX 1070", 8, "nvidia", 0x1B81, 0x1462, 0.1, 256, 150, 6.5),
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
    "RX580": SimModel("Radeon RX 580 Series", 8, "amd", 0x67DF, 0x1DA2, 0.0, 256, 185, 6.2),
    "RX5700XT": SimModel("Radeon RX 5700 XT", 8, "amd", 0x731F, 0x1DA2, 0.0, 448, 225, 9.8),
    "RX6800": SimModel("Radeon RX 6800", 16, "amd", 0x73BF, 0x1002, 0.0, 512, 250, 16.2),
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
    """A plausible host for the profile: the GPUs as NVML/amdsmi would identify them, and a matching host."""
    count, _key, model = parse_profile(profile)
    vendor_id = NVIDIA_VENDOR_ID if model.vendor == "nvidia" else AMD_VENDOR_ID
    ident = PciIdentity(
        vendor_id=vendor_id,
        device_id=model.device_id,
        vram_gb=model.vram_gb,
        raw_name=model.raw_name,
        subsystem_vendor=model.subsystem_vendor,
    )
    db = pciids.load()
    telemetry = {"power_limit_w": model.power_w, "temperature_c": 40.0, "utilisation": 0.0}
    gpus = [named_gpu(db=db, index=i, vendor=model.vendor, ident=ident, **telemetry) for i in range(count)]
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


def simulated_challenge_tflops(profile: str) -> float:
    """The speed a simulated agent reports for the compute challenge: ~80% of the card's matmul peak."""
    _count, _key, model = parse_profile(profile)
    return round(model.matmul_tflops * 0.8, 2)


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
def detect_nvidia(nvml: Any | None = None, *, db: PciDatabase | None = None) -> tuple[list[Gpu], str, str]:
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
        driver = text(nvml.nvmlSystemGetDriverVersion())
        cuda_raw = optional_call(nvml.nvmlSystemGetCudaDriverVersion)
        cuda = f"{cuda_raw // 1000}.{(cuda_raw % 1000) // 10}" if isinstance(cuda_raw, int) and cuda_raw else ""
        db = db or pciids.load()
        gpus = [_nvml_gpu(nvml, index=index, db=db) for index in range(nvml.nvmlDeviceGetCount())]
        return gpus, driver, cuda
    finally:
        optional_call(nvml.nvmlShutdown)


def _nvml_gpu(nvml: Any, *, index: int, db: PciDatabase) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    pci = nvml.nvmlDeviceGetPciInfo(handle)
    device_word, subsystem_word = int(pci.pciDeviceId), int(pci.pciSubSystemId)
    ident = PciIdentity(
        vendor_id=device_word & 0xFFFF,
        device_id=(device_word >> 16) & 0xFFFF,
        vram_gb=round(nvml.nvmlDeviceGetMemoryInfo(handle).total / 1024**3, 1),
        raw_name=text(nvml.nvmlDeviceGetName(handle)),
        subsystem_vendor=subsystem_word & 0xFFFF,
        subsystem_device=(subsystem_word >> 16) & 0xFFFF,
    )
    power = optional_call(nvml.nvmlDeviceGetPowerManagementLimit, handle)
    temp = optional_call(nvml.nvmlDeviceGetTemperature, handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
    util = optional_call(nvml.nvmlDeviceGetUtilizationRates, handle)
    return named_gpu(
        db=db,
        index=index,
        vendor="nvidia",
        ident=ident,
        power_limit_w=power / 1000 if isinstance(power, int | float) else None,
        temperature_c=float(temp) if isinstance(temp, int | float) else None,
        utilisation=float(util.gpu) / 100 if util is not None else None,
    )


def detect(*, simulate_profile: str | None = None, nvml: Any | None = None, amdsmi: Any | None = None) -> Hardware:
    """What this machine has (or the simulated profile): NVIDIA through NVML, else AMD through amdsmi, else
    AMD through rocm-smi."""
    if simulate_profile:
        return simulate(simulate_profile)
    gpus, driver, cuda = detect_nvidia(nvml)
    source = "nvml" if gpus else "none"
    if not gpus:
        gpus, driver = detect_amdsmi(amdsmi)
        source = "amdsmi" if gpus else "none"
    if not gpus:
        gpus, driver = detect_amd()
        source = "rocm-smi" if gpus else "none"
    return Hardware(gpus=gpus, driver_version=driver, cuda_version=cuda, source=source, **host_specs())
