"""Hardware detection: simulate profiles, name normalisation (add-in-board cards), NVML and rocm-smi parsing."""

import json
from types import SimpleNamespace
from typing import Any

import pytest
from rigshift_agent import detect
from rigshift_agent.cli import main


@pytest.mark.parametrize(
    ("profile", "count", "name", "vram"),
    [
        ("8xRTX4090", 8, "RTX 4090", 24),
        ("2xA100-80GB", 2, "A100 80GB", 80),
        ("2xa100_40gb", 2, "A100 40GB", 40),
        ("4xRX580", 4, "RX 580 8GB", 8),
        ("1 x H100-SXM", 1, "H100 SXM", 80),
        ("16xL40S", 16, "L40S", 48),
        ("3×RTX 3060 Ti", 3, "RTX 3060 Ti", 8),
    ],
)
def test_simulate_profile(profile: str, count: int, name: str, vram: float) -> None:
    hw = detect.detect(simulate_profile=profile)
    assert hw.source == "simulated"
    assert len(hw.gpus) == count
    assert {g.name for g in hw.gpus} == {name}
    assert {g.vram_gb for g in hw.gpus} == {vram}
    assert [g.index for g in hw.gpus] == list(range(count))
    assert hw.cpu_cores > 0 and hw.ram_gb > 0 and hw.disk_gb > 0


@pytest.mark.parametrize("profile", ["RTX4090", "0xRTX4090", "17xRTX4090", "8xRTX9999", "x", ""])
def test_simulate_profile_rejects_bad_input(profile: str) -> None:
    with pytest.raises(ValueError, match="profile"):
        detect.parse_profile(profile)


@pytest.mark.parametrize(
    ("raw", "vram", "expected"),
    [
        ("NVIDIA GeForce RTX 4090", 24, "RTX 4090"),
        ("ASUS TUF Gaming GeForce RTX 3090 OC", 24, "RTX 3090"),
        ("MSI GeForce RTX 3060 Ti VENTUS 2X 8G OCV1 LHR", 8, "RTX 3060 Ti"),
        ("Gigabyte GeForce RTX 3080 Ti GAMING OC 12G", 12, "RTX 3080 Ti"),
        ("NVIDIA A100-SXM4-80GB", 80, "A100 80GB"),
        ("NVIDIA A100-PCIE-40GB", 40, "A100 40GB"),
        ("NVIDIA H100 80GB HBM3", 80, "H100 SXM"),
        ("NVIDIA H100 PCIe", 80, "H100 PCIe"),
        ("NVIDIA RTX A6000", 48, "RTX A6000"),
        ("Tesla T4", 16, "T4"),
        ("Sapphire Radeon RX 580 Nitro+ 4GB", 4, "RX 580 4GB"),
        ("AMD Instinct MI300X", 192, "MI300X"),
        ("NVIDIA CMP 170HX", 8, "CMP 170HX"),
        ("P104-100", 8, "P104-100"),
    ],
)
def test_normalise_name(raw: str, vram: float, expected: str) -> None:
    assert detect.normalise_name(raw, vram_gb=vram) == expected


class FakeNvml:
    """Just enough of pynvml: each GPU is (name, device id, subsystem vendor id, VRAM bytes)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: list[tuple[str, int, int, int]], *, fail_init: bool = False) -> None:
        self.gpus = gpus
        self.fail_init = fail_init
        self.shutdown = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.gpus[handle][0]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(total=self.gpus[handle][3])

    def nvmlDeviceGetPciInfo(self, handle: int) -> Any:
        _, device, subsystem_vendor, _ = self.gpus[handle]
        return SimpleNamespace(pciDeviceId=(device << 16) | 0x10DE, pciSubSystemId=(0x1234 << 16) | subsystem_vendor)

    def nvmlDeviceGetPowerManagementLimit(self, handle: int) -> int:
        return 450_000

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 61

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")  # optional fields may be unsupported


GIB = 1024**3


def test_nvml_add_in_board_cards_are_recognised_by_chip_not_board_vendor() -> None:
    nvml = FakeNvml(
        [
            ("NVIDIA GeForce RTX 3090", 0x2204, 0x1043, 24 * GIB),  # ASUS board
            ("NVIDIA GeForce RTX 3090", 0x2204, 0x1462, 24 * GIB),  # MSI board
            ("NVIDIA Graphics Device", 0x2684, 0x19DA, 24 * GIB),  # a Zotac 4090 the driver does not name yet
            ("NVIDIA A100-SXM4-80GB", 0x20B2, 0x10DE, 80 * GIB),
        ]
    )
    gpus, driver, cuda = detect.detect_nvidia(nvml)
    assert driver == "550.54.15"
    assert cuda == "12.4"
    assert [g.name for g in gpus] == ["RTX 3090", "RTX 3090", "RTX 4090", "A100 80GB"]
    assert [g.subsystem_vendor_id for g in gpus] == ["0x1043", "0x1462", "0x19da", "0x10de"]
    assert [g.board_partner for g in gpus] == ["ASUS", "MSI", "Zotac", "NVIDIA"]
    assert gpus[0].pci_device_id == "0x2204"
    assert gpus[0].vram_gb == 24.0
    assert gpus[0].power_limit_w == 450.0
    assert gpus[0].temperature_c == 61.0
    assert gpus[0].utilisation is None  # unsupported: reported as unknown, not as 0
    assert gpus[0].report() == {
        "index": 0,
        "name": "RTX 3090",
        "vram_gb": 24.0,
        "pci_device_id": "0x2204",
        "subsystem_vendor_id": "0x1043",
    }
    assert nvml.shutdown


def test_nvml_unknown_chip_falls_back_to_the_name() -> None:
    gpus, _, _ = detect.detect_nvidia(FakeNvml([("NVIDIA GeForce RTX 3070 Ti", 0x2482, 0x3842, 8 * GIB)]))
    assert gpus[0].name == "RTX 3070 Ti"


def test_no_nvidia_driver_means_no_gpus() -> None:
    assert detect.detect_nvidia(FakeNvml([], fail_init=True)) == ([], "", "")


def test_rocm_smi_json() -> None:
    output = json.dumps(
        {
            "card1": {
                "Card series": "AMD Instinct MI300X",
                "Card model": "0x74a1",
                "VRAM Total Memory (B)": str(192 * GIB),
            },
            "card0": {
                "Card Series": "Radeon RX 580 Series",
                "Card Model": "0x67df",
                "VRAM Total Memory (B)": str(8 * GIB),
            },
            "system": {"Driver version": "6.7.0"},
        }
    )
    gpus = detect.parse_rocm_smi(output)
    assert [(g.index, g.name, g.vram_gb, g.pci_device_id) for g in gpus] == [
        (0, "RX 580 8GB", 8.0, "0x67df"),
        (1, "MI300X", 192.0, "0x74a1"),
    ]


def test_host_specs_from_the_stdlib() -> None:
    host = detect.host_specs()
    assert host["cpu_cores"] >= 1
    assert host["ram_gb"] >= 0
    assert host["disk_gb"] > 0


def test_cli_detect_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--simulate", "8xRTX4090", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["gpus"]) == 8
    assert data["gpus"][0]["name"] == "RTX 4090"
    assert data["driver_version"] and data["cuda_version"]


def test_cli_detect_table_and_bad_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--simulate", "2xA100-80GB"]) == 0
    out = capsys.readouterr().out
    assert out.count("A100 80GB") == 2
    assert main(["detect", "--simulate", "2xGTX9999"]) == 2
    assert "unknown GPU model" in capsys.readouterr().err


def test_cli_bench_without_cuda_says_not_measured(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    monkeypatch.setattr("rigshift_agent.bench._torch", lambda: None)
    assert main(["bench"]) == 0
    assert "not measured" in capsys.readouterr().out
