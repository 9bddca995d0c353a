"""Hardware detection: simulate profiles, name normalisation, NVML / amdsmi / rocm-smi outputs of real boards."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rigshift_agent import detect, pciids
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
        ("Radeon RX 7900 XTX", 24, "RX 7900 XTX"),
        ("PowerColor Red Devil Radeon RX Vega 64", 8, "RX Vega 64"),
        ("Tesla V100S PCIe 32GB", 32, "V100S"),
        ("NVIDIA CMP 170HX", 8, "CMP 170HX"),
        ("P104-100", 8, "P104-100"),
    ],
)
def test_normalise_name(raw: str, vram: float, expected: str) -> None:
    assert detect.normalise_name(raw, vram_gb=vram) == expected


GIB = 1024**3
FIXTURES = Path(__file__).with_name("fixtures")
SHIPPED_ONLY = pciids.load(paths=())  # the copy shipped with the agent, whatever the system has


class FakeNvml:
    """pynvml as far as the agent uses it, answering from a fixture of real boards (see fixtures/nvml_boards.json)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, devices: list[dict[str, Any]], *, fail_init: bool = False) -> None:
        self.devices = devices
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
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return str(self.devices[handle]["name"])

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(total=self.devices[handle]["memory_total"])

    def nvmlDeviceGetPciInfo(self, handle: int) -> Any:
        device = self.devices[handle]
        return SimpleNamespace(
            pciDeviceId=int(device["pciDeviceId"], 16), pciSubSystemId=int(device["pciSubSystemId"], 16)
        )

    def nvmlDeviceGetPowerManagementLimit(self, handle: int) -> int:
        return int(self.devices[handle]["power_limit"])

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return int(self.devices[handle]["temperature"])

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        busy = self.devices[handle]["utilization_gpu"]
        if busy is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")  # optional fields may be unsupported
        return SimpleNamespace(gpu=busy, memory=0)


def _nvml_boards() -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / "nvml_boards.json").read_text())["devices"])


def test_nvml_boards_are_named_by_chip_whoever_built_them() -> None:
    boards = _nvml_boards()
    nvml = FakeNvml(boards)
    gpus, driver, cuda = detect.detect_nvidia(nvml, db=SHIPPED_ONLY)
    assert (driver, cuda) == ("550.54.15", "12.4")
    assert [g.name for g in gpus] == [b["expect"] for b in boards]
    assert [g.board_partner for g in gpus] == [b["board_vendor"] for b in boards]
    assert all(not g.candidates for g in gpus)
    assert nvml.shutdown
    first = gpus[0]
    assert (first.pci_device_id, first.subsystem_vendor_id, first.subsystem_device_id) == ("0x2204", "0x1043", "0x87b3")
    assert (first.vram_gb, first.power_limit_w, first.temperature_c, first.utilisation) == (24.0, 350.0, 44.0, 0.0)
    assert gpus[2].utilisation is None  # unsupported: reported as unknown, not as 0
    assert first.report() == {
        "index": 0,
        "name": "RTX 3090",
        "vram_gb": 24.0,
        "pci_device_id": "0x2204",
        "subsystem_vendor_id": "0x1043",
        "subsystem_device_id": "0x87b3",
    }


def test_nvml_chip_unknown_to_the_pci_database_falls_back_to_the_driver_name() -> None:
    board = {**_nvml_boards()[0], "name": "NVIDIA GeForce RTX 3070 Ti", "pciDeviceId": "0x2FFF10DE"}
    gpus, _, _ = detect.detect_nvidia(FakeNvml([board]), db=SHIPPED_ONLY)
    assert gpus[0].name == "RTX 3070 Ti"


def test_no_nvidia_driver_means_no_gpus() -> None:
    assert detect.detect_nvidia(FakeNvml([], fail_init=True)) == ([], "", "")


class FakeAmdsmi:
    """The amdsmi module as far as the agent uses it, answering from fixtures/amdsmi_boards.json."""

    class AmdSmiMemoryType:
        VRAM = 0

    class AmdSmiTemperatureType:
        EDGE = 0

    class AmdSmiTemperatureMetric:
        CURRENT = 0

    def __init__(self, devices: list[dict[str, Any]]) -> None:
        self.devices = devices
        self.shut = False

    def amdsmi_init(self) -> None:
        return None

    def amdsmi_shut_down(self) -> None:
        self.shut = True

    def amdsmi_get_processor_handles(self) -> list[int]:
        return list(range(len(self.devices)))

    def _get(self, handle: int, key: str) -> Any:
        value = self.devices[handle][key]
        if value is None:
            raise RuntimeError("AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported")
        return value

    def amdsmi_get_gpu_asic_info(self, handle: int) -> Any:
        return self._get(handle, "asic_info")

    def amdsmi_get_gpu_board_info(self, handle: int) -> Any:
        return self._get(handle, "board_info")

    def amdsmi_get_gpu_memory_total(self, handle: int, memory_type: int) -> Any:
        return self._get(handle, "memory_total")

    def amdsmi_get_gpu_vram_info(self, handle: int) -> Any:
        return self._get(handle, "vram_info")

    def amdsmi_get_gpu_driver_info(self, handle: int) -> Any:
        return self._get(handle, "driver_info")

    def amdsmi_get_power_info(self, handle: int) -> Any:
        return self._get(handle, "power_info")

    def amdsmi_get_temp_metric(self, handle: int, kind: int, metric: int) -> Any:
        return self._get(handle, "temperature_edge")

    def amdsmi_get_gpu_activity(self, handle: int) -> Any:
        return self._get(handle, "activity")


def test_amdsmi_boards_named_by_chip_memory_and_compute_units() -> None:
    boards = json.loads((FIXTURES / "amdsmi_boards.json").read_text())["devices"]
    amdsmi = FakeAmdsmi(boards)
    gpus, driver = detect.detect_amdsmi(amdsmi, db=SHIPPED_ONLY)
    assert driver == "6.9.2"
    assert amdsmi.shut
    for gpu, board in zip(gpus, boards, strict=True):
        expect = board["expect"]
        assert (gpu.name, gpu.candidates, gpu.vram_gb) == (expect["name"], expect["candidates"], expect["vram_gb"])
        assert gpu.power_limit_w == expect["power_limit_w"]
        assert gpu.vendor == "amd"
    msi = gpus[0]
    assert (msi.pci_device_id, msi.subsystem_vendor_id, msi.compute_units) == ("0x73bf", "0x1462", 72)
    assert msi.board_partner.startswith("Micro-Star")
    assert (msi.temperature_c, msi.utilisation) == (31.0, 0.09)
    assert gpus[3].temperature_c is None and gpus[4].utilisation is None  # "N/A" is unknown, not 0


def test_amdsmi_not_installed_or_no_driver_means_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # `import amdsmi` raises ImportError
    assert detect.detect_amdsmi() == ([], "")
    broken = FakeAmdsmi([])
    broken.amdsmi_init = lambda: (_ for _ in ()).throw(RuntimeError("AMDSMI_STATUS_DRIVER_NOT_LOADED"))  # type: ignore[method-assign]
    assert detect.detect_amdsmi(broken) == ([], "")


def test_rocm_smi_5_keys_card_vendor_is_the_board_maker() -> None:
    gpus, driver = detect.parse_rocm_smi((FIXTURES / "rocm_smi_5_navi10.json").read_text(), db=SHIPPED_ONLY)
    assert driver == "5.6.15"
    # card0 reports no subsystem: 8 GB Navi 10 is an RX 5700 or 5700 XT, reported as both candidates
    assert gpus[0].candidates == ["RX 5700", "RX 5700 XT"]
    assert gpus[0].name.startswith("Navi 10 [")
    # card1's "Card model" is the subsystem device: Sapphire e410 is the NITRO+ RX 5700 XT
    assert (gpus[1].name, gpus[1].candidates) == ("RX 5700 XT", [])
    assert (gpus[1].subsystem_vendor_id, gpus[1].subsystem_device_id) == ("0x1da2", "0xe410")
    assert (gpus[1].power_limit_w, gpus[1].temperature_c, gpus[1].utilisation) == (195.0, 52.0, 0.37)


def test_rocm_smi_6_keys_name_navi31_by_memory_and_navi22_by_board() -> None:
    gpus, driver = detect.parse_rocm_smi((FIXTURES / "rocm_smi_6_mixed.json").read_text(), db=SHIPPED_ONLY)
    assert driver == "6.7.0"
    # "Navi 31 [Radeon RX 7900 XT/7900 XTX]" whatever the memory was the old bug: 24 GB is the XTX, 20 GB the XT
    assert [g.name for g in gpus] == ["RX 7900 XTX", "RX 7900 XT", "RX 6700 XT", "MI250X"]
    assert [g.vram_gb for g in gpus] == [24.0, 20.0, 12.0, 64.0]
    assert gpus[0].board_partner == "Sapphire Technology Limited"  # subsystem 471e under Navi 31 is Sapphire's
    assert gpus[2].utilisation is None


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
