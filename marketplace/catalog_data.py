"""The GPU catalog: real specifications of the cards that filled mining farms and of the cards AI buyers want.

Sources: vendor data sheets and whitepapers (NVIDIA Pascal/Turing/Ampere/Ada/Hopper/Blackwell whitepapers and
product briefs, AMD product pages and CDNA whitepapers), cross-checked against TechPowerUp's GPU database.

Conventions for the numbers:

- ``fp16_tflops`` is DENSE (no 2:4 sparsity) FP16/BF16 tensor/matrix throughput. For GeForce cards it is the
  rate with FP32 accumulate (what mixed-precision training uses; GeForce runs it at half the FP16-accumulate
  rate). Cards without tensor/matrix cores carry their plain shader FP16 rate (Pascal GeForce: 1/64 of FP32;
  Polaris: same as FP32; Vega/RDNA: packed 2x FP32).
- TFLOPS are rounded to one decimal (the database keeps one), so Pascal's 0.07–0.18 FP16 TFLOPS read 0.1–0.2.
- ``mem_bandwidth_gbs`` is the reference-board figure; ``tdp_w`` the reference board power.
- ``launch_price_usd`` is the announced MSRP; ``None`` where the vendor never published one (data-centre parts,
  CMP mining cards).
- CMP numbers are from NVIDIA's CMP product page (memory, power) and published measurements (throughput): NVIDIA
  crippled these cards in firmware (PCIe 1.1 x4 link, reduced FMA/FP16 rate), so their peak numbers are not
  reachable by AI frameworks.
- ``reference_price_micros`` is a reference market price per GPU-hour (micro-USD) for on-demand rental on GPU
  marketplaces (Vast.ai / RunPod community-cloud medians, 2025), used when RigShift has no listing of that model.
  Unsuitable cards have 0: there is no AI demand for them.
- ``aliases`` are names as miners and drivers write them; the name matcher (services/gpu_names.py) also derives
  forgiving variants (no spaces, no vendor words, no "RTX/GTX/RX/CMP" prefix) on its own.
- ``default_variant`` marks the variant a name without memory size maps to ("RX 580" → the 8 GB card, by far the
  more common one in mining farms).
"""

from dataclasses import dataclass, field
from decimal import Decimal

NVIDIA = "nvidia"
AMD = "amd"

POLARIS_NOTE = "Polaris (GCN 4, gfx803) is not supported by current ROCm releases or PyTorch ROCm builds"
VEGA_NOTE = "Vega 10 (gfx900) was dropped from ROCm 6 and current PyTorch ROCm builds"
RDNA1_NOTE = "RDNA 1 (gfx1010) has never been supported by ROCm"
CMP_NOTE = (
    "CMP mining card: PCIe 1.1 x4 link and firmware-limited FMA/FP16 throughput, no display or tensor-core "
    "path usable by AI frameworks"
)


@dataclass(frozen=True)
class GPUSpec:
    slug: str
    name: str
    vendor: str
    architecture: str
    vram_gb: Decimal
    mem_bandwidth_gbs: int
    fp16_tflops: Decimal
    fp32_tflops: Decimal
    compute_capability: Decimal | None
    tensor_cores: bool
    nvlink: bool
    tdp_w: int
    launch_year: int
    launch_price_usd: int | None
    reference_price_micros: int = 0
    is_mining_card: bool = False
    framework_support: bool = True
    framework_note: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    default_variant: bool = False


def _d(value: str | int | float) -> Decimal:
    return Decimal(str(value))


def _nv(
    slug: str,
    name: str,
    arch: str,
    vram: str | int,
    bw: int,
    fp16: str | float,
    fp32: str | float,
    cc: str,
    tensor: bool,
    tdp: int,
    year: int,
    price: int | None,
    ref_price: int = 0,
    *,
    nvlink: bool = False,
    mining: bool = False,
    support: bool = True,
    note: str = "",
    aliases: tuple[str, ...] = (),
    default: bool = False,
) -> GPUSpec:
    return GPUSpec(
        slug=slug,
        name=name,
        vendor=NVIDIA,
        architecture=arch,
        vram_gb=_d(vram),
        mem_bandwidth_gbs=bw,
        fp16_tflops=_d(fp16),
        fp32_tflops=_d(fp32),
        compute_capability=_d(cc),
        tensor_cores=tensor,
        nvlink=nvlink,
        tdp_w=tdp,
        launch_year=year,
        launch_price_usd=price,
        reference_price_micros=ref_price,
        is_mining_card=mining,
        framework_support=support,
        framework_note=note,
        aliases=aliases,
        default_variant=default,
    )


def _amd(
    slug: str,
    name: str,
    arch: str,
    vram: str | int,
    bw: int,
    fp16: str | float,
    fp32: str | float,
    matrix: bool,
    tdp: int,
    year: int,
    price: int | None,
    ref_price: int = 0,
    *,
    support: bool = True,
    note: str = "",
    aliases: tuple[str, ...] = (),
    default: bool = False,
) -> GPUSpec:
    return GPUSpec(
        slug=slug,
        name=name,
        vendor=AMD,
        architecture=arch,
        vram_gb=_d(vram),
        mem_bandwidth_gbs=bw,
        fp16_tflops=_d(fp16),
        fp32_tflops=_d(fp32),
        compute_capability=None,
        tensor_cores=matrix,
        nvlink=False,
        tdp_w=tdp,
        launch_year=year,
        launch_price_usd=price,
        reference_price_micros=ref_price,
        framework_support=support,
        framework_note=note,
        aliases=aliases,
        default_variant=default,
    )


# fmt: off
CATALOG: tuple[GPUSpec, ...] = (
    # --- AMD Polaris: the backbone of Ethereum mining farms ------------------------------------------------------
    _amd("rx-470-4gb", "Radeon RX 470 4GB", "Polaris 10 (GCN 4)", 4, 211, 4.9, 4.9, False, 120, 2016, 179,
         support=False, note=POLARIS_NOTE, aliases=("RX470 4G", "Ellesmere 470 4GB")),
    _amd("rx-470-8gb", "Radeon RX 470 8GB", "Polaris 10 (GCN 4)", 8, 224, 4.9, 4.9, False, 120, 2016, 199,
         support=False, note=POLARIS_NOTE, aliases=("RX470 8G", "RX 470 Mining"), default=True),
    _amd("rx-480-4gb", "Radeon RX 480 4GB", "Polaris 10 (GCN 4)", 4, 224, 5.8, 5.8, False, 150, 2016, 199,
         support=False, note=POLARIS_NOTE, aliases=("RX480 4G",)),
    _amd("rx-480-8gb", "Radeon RX 480 8GB", "Polaris 10 (GCN 4)", 8, 256, 5.8, 5.8, False, 150, 2016, 239,
         support=False, note=POLARIS_NOTE, aliases=("RX480 8G",), default=True),
    _amd("rx-570-4gb", "Radeon RX 570 4GB", "Polaris 20 (GCN 4)", 4, 224, 5.1, 5.1, False, 150, 2017, 169,
         support=False, note=POLARIS_NOTE, aliases=("RX570 4G",)),
    _amd("rx-570-8gb", "Radeon RX 570 8GB", "Polaris 20 (GCN 4)", 8, 224, 5.1, 5.1, False, 150, 2017, 199,
         support=False, note=POLARIS_NOTE, aliases=("RX570 8G",), default=True),
    _amd("rx-580-4gb", "Radeon RX 580 4GB", "Polaris 20 (GCN 4)", 4, 256, 6.2, 6.2, False, 185, 2017, 199,
         support=False, note=POLARIS_NOTE, aliases=("RX580 4G",)),
    _amd("rx-580-8gb", "Radeon RX 580 8GB", "Polaris 20 (GCN 4)", 8, 256, 6.2, 6.2, False, 185, 2017, 229,
         support=False, note=POLARIS_NOTE, aliases=("RX580 8G", "RX 580 2048SP", "Radeon RX 580 Series"),
         default=True),
    # --- AMD Vega / RDNA ------------------------------------------------------------------------------------------
    _amd("rx-vega-56", "Radeon RX Vega 56", "Vega 10 (GCN 5)", 8, 410, 21.0, 10.5, False, 210, 2017, 399,
         support=False, note=VEGA_NOTE, aliases=("Vega 56", "Vega56")),
    _amd("rx-vega-64", "Radeon RX Vega 64", "Vega 10 (GCN 5)", 8, 484, 25.3, 12.7, False, 295, 2017, 499,
         support=False, note=VEGA_NOTE, aliases=("Vega 64", "Vega64")),
    _amd("rx-5700-xt", "Radeon RX 5700 XT", "RDNA 1 (Navi 10)", 8, 448, 19.5, 9.8, False, 225, 2019, 399,
         support=False, note=RDNA1_NOTE),
    _amd("rx-6700-xt", "Radeon RX 6700 XT", "RDNA 2 (Navi 22)", 12, 384, 26.4, 13.2, False, 230, 2021, 479),
    _amd("rx-6800", "Radeon RX 6800", "RDNA 2 (Navi 21)", 16, 512, 32.3, 16.2, False, 250, 2020, 579),
    _amd("rx-6900-xt", "Radeon RX 6900 XT", "RDNA 2 (Navi 21)", 16, 512, 46.1, 23.0, False, 300, 2020, 999),
    _amd("rx-7900-xtx", "Radeon RX 7900 XTX", "RDNA 3 (Navi 31)", 24, 960, 122.8, 61.4, True, 355, 2022, 999,
         250_000),
    # --- AMD Instinct ------------------------------------------------------------------------------------------------
    _amd("mi250x", "Instinct MI250X", "CDNA 2", 128, 3277, 383.0, 47.9, True, 560, 2021, None, 1_000_000,
         aliases=("MI250X OAM",)),
    _amd("mi300x", "Instinct MI300X", "CDNA 3", 192, 5300, 1307.4, 81.7, True, 750, 2023, None, 2_300_000,
         aliases=("MI300X OAM",)),
    # --- NVIDIA Pascal and the Pascal mining cards -----------------------------------------------------------------
    _nv("gtx-1060-6gb", "GeForce GTX 1060 6GB", "Pascal (GP106)", 6, 192, 0.1, 4.4, "6.1", False, 120, 2016, 249,
        aliases=("GTX1060 6G",), default=True),
    _nv("gtx-1070", "GeForce GTX 1070", "Pascal (GP104)", 8, 256, 0.1, 6.5, "6.1", False, 150, 2016, 379),
    _nv("gtx-1070-ti", "GeForce GTX 1070 Ti", "Pascal (GP104)", 8, 256, 0.1, 8.2, "6.1", False, 180, 2017, 449),
    _nv("gtx-1080", "GeForce GTX 1080", "Pascal (GP104)", 8, 320, 0.1, 8.9, "6.1", False, 180, 2016, 599),
    _nv("gtx-1080-ti", "GeForce GTX 1080 Ti", "Pascal (GP102)", 11, 484, 0.2, 11.3, "6.1", False, 250, 2017, 699),
    _nv("p104-100", "NVIDIA P104-100", "Pascal (GP104)", 8, 320, 0.1, 6.7, "6.1", False, 180, 2017, None,
        mining=True, aliases=("P104", "P104-100 8GB")),
    _nv("p106-100", "NVIDIA P106-100", "Pascal (GP106)", 6, 192, 0.1, 4.4, "6.1", False, 120, 2017, None,
        mining=True, aliases=("P106",)),
    # --- NVIDIA Turing ----------------------------------------------------------------------------------------------
    _nv("gtx-1660-super", "GeForce GTX 1660 Super", "Turing (TU116)", 6, 336, 10.1, 5.0, "7.5", False, 125, 2019,
        229),
    _nv("rtx-2060", "GeForce RTX 2060", "Turing (TU106)", 6, 336, 25.8, 6.5, "7.5", True, 160, 2019, 349),
    _nv("rtx-2070", "GeForce RTX 2070", "Turing (TU106)", 8, 448, 29.9, 7.5, "7.5", True, 175, 2018, 499),
    _nv("rtx-2080", "GeForce RTX 2080", "Turing (TU104)", 8, 448, 40.3, 10.1, "7.5", True, 215, 2018, 699,
        nvlink=True),
    _nv("rtx-2080-ti", "GeForce RTX 2080 Ti", "Turing (TU102)", 11, 616, 53.8, 13.4, "7.5", True, 250, 2018, 999,
        90_000, nvlink=True),
    _nv("t4", "Tesla T4", "Turing (TU104)", 16, 320, 65.0, 8.1, "7.5", True, 70, 2018, None, 120_000,
        aliases=("Tesla T4",)),
    # --- NVIDIA CMP mining cards --------------------------------------------------------------------------------------
    _nv("cmp-30hx", "NVIDIA CMP 30HX", "Turing (TU116)", 6, 336, 10.0, 5.0, "7.5", False, 125, 2021, None,
        mining=True, support=False, note=CMP_NOTE),
    _nv("cmp-40hx", "NVIDIA CMP 40HX", "Turing (TU106)", 8, 448, 15.2, 7.6, "7.5", False, 185, 2021, None,
        mining=True, support=False, note=CMP_NOTE),
    _nv("cmp-50hx", "NVIDIA CMP 50HX", "Turing (TU102)", 10, 560, 22.1, 11.0, "7.5", False, 250, 2021, None,
        mining=True, support=False, note=CMP_NOTE),
    _nv("cmp-90hx", "NVIDIA CMP 90HX", "Ampere (GA102)", 10, 760, 21.9, 21.9, "8.6", False, 320, 2021, None,
        mining=True, support=False, note=CMP_NOTE),
    _nv("cmp-170hx", "NVIDIA CMP 170HX", "Ampere (GA100)", 8, 1493, 50.5, 6.3, "8.0", False, 250, 2021, None,
        mining=True, support=False, note=CMP_NOTE),
    # --- NVIDIA Volta -------------------------------------------------------------------------------------------------
    _nv("v100-16gb", "Tesla V100 16GB (PCIe)", "Volta (GV100)", 16, 900, 112.0, 14.0, "7.0", True, 250, 2017, None,
        150_000, aliases=("V100", "Tesla V100", "V100 PCIe"), default=True),
    _nv("v100-32gb", "Tesla V100 32GB (SXM2)", "Volta (GV100)", 32, 900, 125.0, 15.7, "7.0", True, 300, 2018, None,
        250_000, nvlink=True, aliases=("V100 SXM2", "V100S")),
    # --- NVIDIA Ampere ----------------------------------------------------------------------------------------------
    _nv("rtx-3060", "GeForce RTX 3060 12GB", "Ampere (GA106)", 12, 360, 25.4, 12.7, "8.6", True, 170, 2021, 329,
        70_000, aliases=("RTX 3060",)),
    _nv("rtx-3060-ti", "GeForce RTX 3060 Ti", "Ampere (GA104)", 8, 448, 32.4, 16.2, "8.6", True, 200, 2020, 399),
    _nv("rtx-3070", "GeForce RTX 3070", "Ampere (GA104)", 8, 448, 40.6, 20.3, "8.6", True, 220, 2020, 499),
    _nv("rtx-3070-ti", "GeForce RTX 3070 Ti", "Ampere (GA104)", 8, 608, 43.5, 21.7, "8.6", True, 290, 2021, 599),
    _nv("rtx-3080", "GeForce RTX 3080 10GB", "Ampere (GA102)", 10, 760, 59.5, 29.8, "8.6", True, 320, 2020, 699,
        110_000, aliases=("RTX 3080",)),
    _nv("rtx-3080-ti", "GeForce RTX 3080 Ti", "Ampere (GA102)", 12, 912, 68.2, 34.1, "8.6", True, 350, 2021, 1199,
        140_000),
    _nv("rtx-3090", "GeForce RTX 3090", "Ampere (GA102)", 24, 936, 71.0, 35.6, "8.6", True, 350, 2020, 1499,
        220_000, nvlink=True),
    _nv("rtx-a4000", "RTX A4000", "Ampere (GA104)", 16, 448, 76.7, 19.2, "8.6", True, 140, 2021, 1000, 150_000,
        aliases=("A4000", "NVIDIA RTX A4000")),
    _nv("rtx-a5000", "RTX A5000", "Ampere (GA102)", 24, 768, 111.1, 27.8, "8.6", True, 230, 2021, 2250, 250_000,
        nvlink=True, aliases=("A5000",)),
    _nv("rtx-a6000", "RTX A6000", "Ampere (GA102)", 48, 768, 154.8, 38.7, "8.6", True, 300, 2020, 4650, 450_000,
        nvlink=True, aliases=("A6000",)),
    _nv("a40", "NVIDIA A40", "Ampere (GA102)", 48, 696, 149.7, 37.4, "8.6", True, 300, 2020, None, 400_000,
        nvlink=True),
    _nv("a100-40gb", "A100 40GB", "Ampere (GA100)", 40, 1555, 312.0, 19.5, "8.0", True, 400, 2020, None, 1_000_000,
        nvlink=True, aliases=("A100-SXM4-40GB", "A100-PCIE-40GB")),
    _nv("a100-80gb", "A100 80GB", "Ampere (GA100)", 80, 2039, 312.0, 19.5, "8.0", True, 400, 2020, None, 1_300_000,
        nvlink=True, aliases=("A100", "A100-SXM4-80GB", "A100 80GB PCIe"), default=True),
    # --- NVIDIA Ada Lovelace --------------------------------------------------------------------------------------
    _nv("rtx-4080", "GeForce RTX 4080", "Ada Lovelace (AD103)", 16, 717, 97.5, 48.7, "8.9", True, 320, 2022, 1199,
        200_000),
    _nv("rtx-4090", "GeForce RTX 4090", "Ada Lovelace (AD102)", 24, 1008, 165.2, 82.6, "8.9", True, 450, 2022, 1599,
        400_000),
    _nv("l4", "NVIDIA L4", "Ada Lovelace (AD104)", 24, 300, 121.0, 30.3, "8.9", True, 72, 2023, None, 300_000),
    _nv("l40s", "NVIDIA L40S", "Ada Lovelace (AD102)", 48, 864, 362.1, 91.6, "8.9", True, 350, 2023, None, 850_000),
    # --- NVIDIA Hopper / Blackwell ----------------------------------------------------------------------------------
    _nv("h100-pcie", "H100 PCIe", "Hopper (GH100)", 80, 2000, 756.0, 51.2, "9.0", True, 350, 2022, None, 2_000_000,
        nvlink=True, aliases=("H100 PCIe 80GB", "H100 80GB PCIe")),
    _nv("h100-sxm", "H100 SXM", "Hopper (GH100)", 80, 3350, 989.4, 67.0, "9.0", True, 700, 2022, None, 2_500_000,
        nvlink=True, aliases=("H100", "H100 SXM5", "H100 80GB HBM3", "H100 HBM3"), default=True),
    _nv("h200", "H200 SXM", "Hopper (GH100)", 141, 4800, 989.4, 67.0, "9.0", True, 700, 2024, None, 3_500_000,
        nvlink=True, aliases=("H200", "H200 141GB HBM3e")),
    _nv("rtx-5090", "GeForce RTX 5090", "Blackwell (GB202)", 32, 1792, 209.5, 104.8, "12.0", True, 575, 2025, 1999,
        700_000),
)
# fmt: on


@dataclass(frozen=True)
class UpgradeOption:
    """A card the upgrade path proposes, with the price a provider would pay for it today."""

    slug: str
    unit_cost_usd: int
    cost_basis: str


# The upgrade path offers these replacements for unsuitable cards (one new card per slot). Prices: RTX 4090 at
# its launch MSRP; a used RTX 3090 at its typical 2025 second-hand price (eBay sold listings, ~$700–800); an L40S
# at its typical 2025 street price from server resellers (~$7,500–8,500, NVIDIA publishes no MSRP).
UPGRADE_OPTIONS: tuple[UpgradeOption, ...] = (
    UpgradeOption(slug="rtx-4090", unit_cost_usd=1599, cost_basis="new, launch price (MSRP)"),
    UpgradeOption(slug="rtx-3090", unit_cost_usd=750, cost_basis="used, typical 2025 second-hand price"),
    UpgradeOption(slug="l40s", unit_cost_usd=7500, cost_basis="new, typical 2025 street price (no MSRP)"),
)


def spec_by_slug() -> dict[str, GPUSpec]:
    return {spec.slug: spec for spec in CATALOG}
