"""The PCI database (system copy and the shipped one) and naming from it: chip, memory, compute units, board."""

from pathlib import Path

import pytest
from rigshift_agent import pciids
from rigshift_agent.naming import SHARED_CHIP_MODELS, GpuNaming, catalog_base, expand_marketing, name_gpu

AMD = pciids.AMD_VENDOR_ID
NVIDIA = pciids.NVIDIA_VENDOR_ID
SHIPPED = pciids.load(paths=())

OLD_SYSTEM_IDS = """#
#	List of PCI ID's
#
#	Version: 2023.04.10
#
1002  Advanced Micro Devices, Inc. [AMD/ATI]
	7408  Aldebaran/MI200 [Instinct MI250X]
	744c  Navi 31 [Radeon RX 7900 XT/7900 XTX]
	7ffe  Made Up [Only In The System Copy]
10de  NVIDIA Corporation
	2684  AD102 [GeForce RTX 4090]
C 03  Display controller
	00  VGA compatible controller
"""


def test_shipped_copy_keeps_the_format_licence_and_the_gpu_vendors() -> None:
    text = pciids.SHIPPED_PATH.read_text(encoding="utf-8")
    assert "3-clause BSD License" in text and "GNU General Public License" in text
    assert SHIPPED.version == "2025.06.09"
    assert SHIPPED.device_name(NVIDIA, 0x2B85) == "GB202 [GeForce RTX 5090]"
    assert SHIPPED.device_name(AMD, 0x744C) == "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]"
    assert SHIPPED.subsystem_name(AMD, 0x744C, 0x1DA2, 0x471E) == "PULSE RX 7900 XTX"
    assert SHIPPED.vendor_name(0x1DA2) == "Sapphire Technology Limited"  # board partners keep their names
    assert SHIPPED.vendor_id("Sapphire Technology Limited") == 0x1DA2
    assert SHIPPED.device_name(0x8086, 0x56A0) is None  # other vendors' devices are not shipped


def test_system_copy_is_read_and_the_newer_database_wins(tmp_path: Path) -> None:
    system = tmp_path / "pci.ids"
    system.write_text(OLD_SYSTEM_IDS, encoding="utf-8")
    db = pciids.load(paths=(str(tmp_path / "missing.ids"), str(system)))
    assert [ids.version for ids in db.sources] == ["2025.06.09", "2023.04.10"]
    assert db.device_name(AMD, 0x744C) == "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]"
    assert db.device_name(AMD, 0x7FFE) == "Made Up [Only In The System Copy]"  # the older one fills gaps
    newer = tmp_path / "new.ids"
    newer.write_text(OLD_SYSTEM_IDS.replace("2023.04.10", "2099.01.01"), encoding="utf-8")
    assert pciids.load(paths=(str(newer),)).device_name(AMD, 0x744C) == "Navi 31 [Radeon RX 7900 XT/7900 XTX]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Radeon RX 6800/6800 XT / 6900 XT", ["Radeon RX 6800", "Radeon RX 6800 XT", "Radeon RX 6900 XT"]),
        ("Radeon RX Vega 56/64", ["Radeon RX Vega 56", "Radeon RX Vega 64"]),
        ("Instinct MI250X/MI250", ["Instinct MI250X", "MI250"]),
        ("RX 9070/9070 XT", ["RX 9070", "RX 9070 XT"]),
        ("GeForce RTX 4090", ["GeForce RTX 4090"]),
    ],
)
def test_expand_marketing_lists(text: str, expected: list[str]) -> None:
    assert expand_marketing(text) == expected


@pytest.mark.parametrize(
    ("device_id", "vram", "units", "expected"),
    [
        # the PCI database's name as rocm-smi prints it stayed unnormalised: compute units tell 56 from 64
        (0x687F, 8.0, 56, GpuNaming("RX Vega 56", chip="Vega 10 XL/XT")),
        (0x687F, 8.0, 64, GpuNaming("RX Vega 64", chip="Vega 10 XL/XT")),
        # "Aldebaran/MI200 [Instinct MI250X]" became "MI200"
        (0x7408, 64.0, None, GpuNaming("MI250X", chip="Aldebaran/MI200")),
        (0x740C, 64.0, 110, GpuNaming("MI250X", chip="Aldebaran/MI200")),
        (0x740C, 64.0, 104, GpuNaming("MI250", chip="Aldebaran/MI200")),
        # Navi 31 became "RX 7900 XT" whatever the memory
        (0x744C, 23.98, None, GpuNaming("RX 7900 XTX", chip="Navi 31")),
        (0x744C, 19.98, None, GpuNaming("RX 7900 XT", chip="Navi 31")),
        (0x744C, 15.98, 80, GpuNaming("RX 7900 GRE", chip="Navi 31")),
        # Navi 22 became "RX 6700": 10 GB is the 6700; 12 GB the 6700 XT or 6750 XT (same chip, memory, units)
        (0x73DF, 9.98, None, GpuNaming("RX 6700", chip="Navi 22")),
        (0x73DF, 11.98, 40, GpuNaming(SHIPPED.device_name(AMD, 0x73DF) or "", ("RX 6700 XT", "RX 6750 XT"), "Navi 22")),
        # Navi 21: 16 GB each; compute units decide, without them all three are candidates
        (0x73BF, 15.98, 60, GpuNaming("RX 6800", chip="Navi 21")),
        (0x73BF, 15.98, 72, GpuNaming("RX 6800 XT", chip="Navi 21")),
        (0x73BF, 15.98, 80, GpuNaming("RX 6900 XT", chip="Navi 21")),
        (
            0x73BF,
            15.98,
            None,
            GpuNaming(SHIPPED.device_name(AMD, 0x73BF) or "", ("RX 6800", "RX 6800 XT", "RX 6900 XT"), "Navi 21"),
        ),
    ],
)
def test_amd_shared_chips(device_id: int, vram: float, units: int | None, expected: GpuNaming) -> None:
    assert name_gpu(db=SHIPPED, vendor_id=AMD, device_id=device_id, vram_gb=vram, compute_units=units) == expected


def test_the_board_name_chooses_where_memory_and_units_cannot() -> None:
    pulse = name_gpu(db=SHIPPED, vendor_id=AMD, device_id=0x73BF, vram_gb=15.98, subsystem=(0x1DA2, 0xE437))
    assert pulse.name == "RX 6800"  # "Pulse Radeon RX 6800"
    # ...but never against what was measured: XFX's 0e3b board name says "RX 7900 XTX / RX 7900 GRE", 20 GB says XT
    xfx = name_gpu(db=SHIPPED, vendor_id=AMD, device_id=0x744C, vram_gb=19.98, subsystem=(0x1002, 0x0E3B))
    assert xfx.name == "RX 7900 XT"
    nitro = name_gpu(db=SHIPPED, vendor_id=AMD, device_id=0x67DF, vram_gb=8.0, subsystem=(0x1DA2, 0xE366))
    assert nitro.candidates == ("RX 570 8GB", "RX 580 8GB", "RX 590")  # "Nitro+ Radeon RX 570/580/590"
    driver = name_gpu(db=SHIPPED, vendor_id=AMD, device_id=0x67DF, vram_gb=4.0, hints=["Radeon RX 580 Series"])
    assert driver.name == "RX 580 4GB"


def test_every_shared_chip_model_is_one_the_database_names() -> None:
    named = {
        base
        for (vendor, _device), name in SHIPPED.sources[0].devices.items()
        if vendor == AMD
        for base in (catalog_base(part) for part in expand_marketing(name.partition("[")[2].rstrip("]")))
        if base
    }
    assert set(SHARED_CHIP_MODELS) <= named


def test_unknown_chip_is_named_from_the_driver() -> None:
    naming = name_gpu(db=SHIPPED, vendor_id=NVIDIA, device_id=0xFFFF, vram_gb=24, hints=["NVIDIA GeForce RTX 4090"])
    assert naming == GpuNaming("RTX 4090", source="driver name")
