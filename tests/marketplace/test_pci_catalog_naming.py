"""Every NVIDIA and AMD catalog model, identified as the tools identify it (PCI ids from pci.ids, VRAM as the
driver reports it, compute units where amdsmi counts them), named by the agent and matched by the server.

The table lists the PCI device ids the PCI database gives each catalog model (desktop parts; LHR, "Rev. A" and
board-specific ids included). A row without compute units is what rocm-smi gives: the server must accept the
registered model among the candidates.
"""

from typing import Any

import pytest
from rigshift_agent import pciids
from rigshift_agent.gpu import PciIdentity, named_gpu

from marketplace.catalog_data import AMD, CATALOG, NVIDIA
from marketplace.models import GPUModel
from marketplace.services.verification import gpu_report_matches

DB = pciids.load(paths=())  # the shipped copy: the same answer on every machine

# slug: [(device id, VRAM GiB as reported, compute units or None, subsystem (vendor, device) or None), ...]
Row = tuple[int, float, int | None, tuple[int, int] | None]
NVIDIA_IDS: dict[str, list[Row]] = {
    "gtx-1060-6gb": [(0x1C03, 5.93, None, None), (0x1B83, 5.93, None, None), (0x1C06, 5.93, None, None)],
    "gtx-1070": [(0x1B81, 7.93, None, None)],
    "gtx-1070-ti": [(0x1B82, 7.93, None, None)],
    "gtx-1080": [(0x1B80, 7.93, None, None)],
    "gtx-1080-ti": [(0x1B06, 11.0, None, None)],
    "p104-100": [(0x1B87, 7.93, None, None)],
    "p106-100": [(0x1C07, 5.93, None, None)],
    "gtx-1660-super": [(0x21C4, 5.8, None, None), (0x1F09, 5.8, None, None)],
    "rtx-2060": [(0x1E89, 5.8, None, None), (0x1F08, 5.8, None, None)],
    "rtx-2070": [(0x1F02, 7.8, None, None), (0x1F07, 7.8, None, None)],
    "rtx-2080": [(0x1E82, 7.8, None, None), (0x1E87, 7.8, None, None)],
    "rtx-2080-ti": [(0x1E04, 10.8, None, None), (0x1E07, 10.8, None, None)],
    "t4": [(0x1EB8, 15.0, None, None)],
    "cmp-30hx": [(0x2189, 5.8, None, None)],
    "cmp-40hx": [(0x1F0B, 7.8, None, None)],
    "cmp-50hx": [(0x1E09, 9.8, None, None)],
    "cmp-90hx": [(0x220D, 9.8, None, None)],
    "cmp-170hx": [(0x2082, 7.8, None, None), (0x20C2, 7.8, None, None)],
    "v100-16gb": [(0x1DB4, 15.8, None, None), (0x1DB1, 15.8, None, None), (0x1DF5, 15.8, None, None)],
    "v100-32gb": [(0x1DB5, 31.7, None, None), (0x1DB6, 31.7, None, None), (0x1DF6, 31.7, None, None)],
    "rtx-3060": [(0x2503, 12.0, None, None), (0x2504, 12.0, None, None), (0x2544, 12.0, None, None)],
    "rtx-3060-ti": [(0x2486, 8.0, None, None), (0x2489, 8.0, None, None), (0x2414, 8.0, None, None)],
    "rtx-3070": [(0x2484, 8.0, None, None), (0x2488, 8.0, None, None)],
    "rtx-3070-ti": [(0x2482, 8.0, None, None)],
    "rtx-3080": [(0x2206, 10.0, None, (0x1462, 0x3892)), (0x2216, 10.0, None, None)],
    "rtx-3080-ti": [(0x2208, 12.0, None, None)],
    "rtx-3090": [(0x2204, 24.0, None, None)],
    "rtx-a4000": [(0x24B0, 16.0, None, None)],
    "rtx-a5000": [(0x2231, 24.0, None, None)],
    "rtx-a6000": [(0x2230, 48.0, None, None)],
    "a40": [(0x2235, 44.99, None, None)],
    "a100-40gb": [(0x20B0, 40.0, None, None), (0x20B1, 40.0, None, None), (0x20F1, 40.0, None, None)],
    "a100-80gb": [(0x20B2, 80.0, None, None), (0x20B5, 80.0, None, None)],
    "rtx-4080": [(0x2704, 15.99, None, None)],
    "rtx-4090": [(0x2684, 23.99, None, None)],
    "l4": [(0x27B8, 22.49, None, None)],
    "l40s": [(0x26B9, 44.99, None, None)],
    "h100-pcie": [(0x2331, 79.65, None, None)],
    "h100-sxm": [(0x2330, 79.65, None, None)],
    "h200": [(0x2335, 139.8, None, None)],
    "rtx-5090": [(0x2B85, 31.84, None, None)],
}
AMD_IDS: dict[str, list[Row]] = {
    # Polaris: compute units split 470/570 (32) from 480/580 (36); the board names the rest
    "rx-470-4gb": [(0x67DF, 3.98, 32, (0x1462, 0x3411)), (0x67DF, 3.98, None, None)],
    "rx-470-8gb": [(0x67DF, 7.98, 32, (0x1682, 0x9470)), (0x67DF, 7.98, None, None)],
    "rx-480-4gb": [(0x67DF, 3.98, 36, (0x1462, 0x809E)), (0x67DF, 3.98, None, None)],
    "rx-480-8gb": [(0x67DF, 7.98, 36, (0x1462, 0x3413)), (0x67DF, 7.98, None, None)],
    "rx-570-4gb": [(0x67DF, 3.98, 32, (0x1DA2, 0xE353)), (0x67DF, 3.98, None, None)],
    "rx-570-8gb": [(0x67DF, 7.98, 32, (0x1462, 0x341B)), (0x67DF, 7.98, None, None)],
    "rx-580-4gb": [(0x67DF, 3.98, 36, (0x1DA2, 0xE387)), (0x67DF, 3.98, None, None)],
    "rx-580-8gb": [(0x67DF, 7.98, 36, (0x1462, 0x3418)), (0x6FDF, 7.98, 32, None), (0x67DF, 7.98, None, None)],
    "rx-vega-56": [(0x687F, 7.98, 56, None), (0x687F, 7.98, None, (0x1043, 0x0555))],
    "rx-vega-64": [(0x687F, 7.98, 64, None), (0x687F, 7.98, None, (0x1002, 0x0B36))],
    "rx-5700-xt": [(0x731F, 7.98, 40, None), (0x731F, 7.98, None, (0x1DA2, 0xE410)), (0x731F, 7.98, None, None)],
    "rx-6700-xt": [(0x73DF, 11.98, 40, None), (0x73DF, 11.98, None, (0x148C, 0x2409))],
    "rx-6800": [(0x73BF, 15.98, 60, None), (0x73BF, 15.98, None, (0x1DA2, 0xE437)), (0x73BF, 15.98, None, None)],
    "rx-6900-xt": [(0x73BF, 15.98, 80, None), (0x73AF, 15.98, 80, None), (0x73BF, 15.98, None, None)],
    "rx-7900-xtx": [(0x744C, 23.98, 96, None), (0x744C, 23.98, None, None)],
    "mi250x": [(0x740C, 128.0, 220, None), (0x740C, 64.0, 110, None), (0x7408, 64.0, None, None)],
    "mi300x": [(0x74A1, 191.98, 304, None), (0x74A1, 191.98, None, None)],
}


def _report(vendor_id: int, row: Row) -> dict[str, Any]:
    device_id, vram, units, subsystem = row
    ident = PciIdentity(
        vendor_id=vendor_id,
        device_id=device_id,
        vram_gb=vram,
        compute_units=units,
        subsystem_vendor=subsystem[0] if subsystem else None,
        subsystem_device=subsystem[1] if subsystem else None,
    )
    return named_gpu(
        db=DB, index=0, vendor="amd" if vendor_id == pciids.AMD_VENDOR_ID else "nvidia", ident=ident
    ).report()


def test_the_table_covers_every_nvidia_and_amd_catalog_model() -> None:
    assert set(NVIDIA_IDS) == {spec.slug for spec in CATALOG if spec.vendor == NVIDIA}
    assert set(AMD_IDS) == {spec.slug for spec in CATALOG if spec.vendor == AMD}
    for table, vendor_id in ((NVIDIA_IDS, pciids.NVIDIA_VENDOR_ID), (AMD_IDS, pciids.AMD_VENDOR_ID)):
        for rows in table.values():
            for device_id, *_ in rows:
                assert DB.device_name(vendor_id, device_id), f"{device_id:#06x} is not in pci.ids"


CASES = [(slug, pciids.NVIDIA_VENDOR_ID, row) for slug, rows in NVIDIA_IDS.items() for row in rows]
CASES += [(slug, pciids.AMD_VENDOR_ID, row) for slug, rows in AMD_IDS.items() for row in rows]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("slug", "vendor_id", "row"), CASES, ids=[f"{s}-{r[0]:04x}-{i}" for i, (s, _, r) in enumerate(CASES)]
)
def test_catalog_model_named_from_pci_ids(slug: str, vendor_id: int, row: Row) -> None:
    model = GPUModel.objects.get(slug=slug)
    report = _report(vendor_id, row)
    assert gpu_report_matches(gpu=report, gpu_model=model), report
    exact = row[2] is not None or row[3] is not None or vendor_id == pciids.NVIDIA_VENDOR_ID
    if exact:  # with compute units or a board name no other catalog model matches (RX 6750 XT is not in it)
        others = GPUModel.objects.filter(vendor=model.vendor).exclude(slug=slug)
        assert not [m.slug for m in others if gpu_report_matches(gpu=report, gpu_model=m)], report
