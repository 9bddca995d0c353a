"""The GPU catalog: the AI-tier rule and the idempotent sync of marketplace/catalog_data.py into the database.

The tier rule (``gpu_tier_classify``) is a pure function of a card's specifications. It is applied in order:

1. ``unsuitable`` when ANY of these holds (the reason lists every one that does):
   - no current framework support: the card cannot run current CUDA/ROCm AI frameworks usefully (NVIDIA CMP
     mining cards: PCIe 1.1 x4 and firmware-limited throughput; AMD Polaris/Vega/RDNA 1: dropped from or never in
     ROCm);
   - less than 10 GB of VRAM (``MIN_VRAM_GB``): too little to hold even a small quantised model plus activations;
   - no tensor/matrix cores: FP16/BF16 matrix throughput is a fraction of what buyers pay for (Pascal, GTX 16xx,
     RDNA 1/2, Polaris).
2. ``training`` when VRAM >= 40 GB and memory bandwidth >= 1500 GB/s: data-centre parts (A100, H100, H200, MI250X,
   MI300X) that train and serve large models.
3. ``fine_tuning`` when VRAM >= 20 GB and memory bandwidth >= 600 GB/s: RTX 3090/4090/5090, A5000/A6000, A40,
   L40S, V100 32 GB, RX 7900 XTX.
4. ``inference`` otherwise: 10–19 GB cards with tensor cores (RTX 3060 12 GB, 3080, 2080 Ti, A4000, T4), and
   20 GB+ cards whose memory bandwidth is below 600 GB/s (L4), too slow for fine-tuning throughput.
"""

from decimal import Decimal
from typing import Any

from django.db import transaction

from marketplace.catalog_data import CATALOG, GPUSpec
from marketplace.models import GPUModel, Tier

MIN_VRAM_GB = Decimal(10)
TRAINING_MIN_VRAM_GB = Decimal(40)
TRAINING_MIN_BANDWIDTH_GBS = 1500
FINE_TUNING_MIN_VRAM_GB = Decimal(20)
FINE_TUNING_MIN_BANDWIDTH_GBS = 600


def _gb(value: Decimal) -> str:
    return f"{value.normalize():f}"


def gpu_tier_classify(*, spec: GPUSpec) -> tuple[str, str]:
    """The AI tier of a card and a human reason, from its specifications alone (see the module docstring)."""
    vram, bandwidth = spec.vram_gb, spec.mem_bandwidth_gbs
    cores = "matrix cores" if spec.vendor == "amd" else "tensor cores"
    problems: list[str] = []
    if not spec.framework_support:
        problems.append(spec.framework_note or "no current CUDA/ROCm framework support")
    if vram < MIN_VRAM_GB:
        problems.append(f"only {_gb(vram)} GB of VRAM (AI work needs at least {_gb(MIN_VRAM_GB)} GB)")
    if not spec.tensor_cores:
        problems.append(f"no tensor/matrix cores for FP16/BF16 (only {spec.fp16_tflops} TFLOPS FP16)")
    if problems:
        reason = "; ".join(problems)
        return Tier.UNSUITABLE.value, reason[0].upper() + reason[1:] + "."
    if vram >= TRAINING_MIN_VRAM_GB and bandwidth >= TRAINING_MIN_BANDWIDTH_GBS:
        return (
            Tier.TRAINING.value,
            f"{_gb(vram)} GB at {bandwidth:,} GB/s with {cores}: data-centre class, trains and serves large models.",
        )
    if vram >= FINE_TUNING_MIN_VRAM_GB and bandwidth >= FINE_TUNING_MIN_BANDWIDTH_GBS:
        return (
            Tier.FINE_TUNING.value,
            f"{_gb(vram)} GB at {bandwidth:,} GB/s with {cores}: fine-tunes (LoRA/QLoRA) 7–13B models; "
            f"below the {_gb(TRAINING_MIN_VRAM_GB)} GB / {TRAINING_MIN_BANDWIDTH_GBS:,} GB/s of training parts.",
        )
    if vram >= FINE_TUNING_MIN_VRAM_GB:
        return (
            Tier.INFERENCE.value,
            f"{_gb(vram)} GB with {cores}, but {bandwidth:,} GB/s of memory bandwidth is too slow for "
            f"fine-tuning (needs {FINE_TUNING_MIN_BANDWIDTH_GBS:,} GB/s): inference.",
        )
    return (
        Tier.INFERENCE.value,
        f"{_gb(vram)} GB with {cores}: serves small and quantised models; too little memory for fine-tuning "
        f"(needs {_gb(FINE_TUNING_MIN_VRAM_GB)} GB).",
    )


def _fields(spec: GPUSpec) -> dict[str, Any]:
    tier, reason = gpu_tier_classify(spec=spec)
    return {
        "name": spec.name,
        "vendor": spec.vendor,
        "architecture": spec.architecture,
        "vram_gb": spec.vram_gb,
        "mem_bandwidth_gbs": spec.mem_bandwidth_gbs,
        "fp16_tflops": spec.fp16_tflops,
        "fp32_tflops": spec.fp32_tflops,
        "compute_capability": spec.compute_capability,
        "tensor_cores": spec.tensor_cores,
        "framework_support": spec.framework_support,
        "nvlink": spec.nvlink,
        "tdp_w": spec.tdp_w,
        "launch_year": spec.launch_year,
        "launch_price_usd": spec.launch_price_usd,
        "is_mining_card": spec.is_mining_card,
        "aliases": list(spec.aliases),
        "tier": tier,
        "tier_reason": reason[:300],
        "reference_price_micros": spec.reference_price_micros,
    }


def catalog_sync(*, using: str = "default") -> dict[str, int]:
    """Upsert every catalog entry by slug (computing its tier); running it again changes nothing.

    Models no longer in the catalog are kept (nodes may reference them). Returns counts of created/updated/unchanged.
    """
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with transaction.atomic(using=using):
        existing = {m.slug: m for m in GPUModel.objects.using(using).select_for_update().order_by("pk")}
        for spec in CATALOG:
            fields = _fields(spec)
            current = existing.get(spec.slug)
            if current is None:
                GPUModel.objects.using(using).create(slug=spec.slug, **fields)
                counts["created"] += 1
                continue
            changed = [name for name, value in fields.items() if getattr(current, name) != value]
            if not changed:
                counts["unchanged"] += 1
                continue
            for name in changed:
                setattr(current, name, fields[name])
            current.save(using=using, update_fields=changed)
            counts["updated"] += 1
    return counts
