"""GPU catalog: data, tier rule (case by case), idempotent sync, name matching, public API."""

import re
from dataclasses import replace
from decimal import Decimal

import pytest

from marketplace.catalog_data import CATALOG, UPGRADE_OPTIONS, spec_by_slug
from marketplace.models import GPUModel, Tier
from marketplace.services.catalog import catalog_sync, gpu_tier_classify
from marketplace.services.gpu_names import _index, gpu_model_match, match_slug

SPECS = spec_by_slug()

REQUIRED_SLUGS = [
    *[f"rx-{n}-{m}gb" for n in (470, 480, 570, 580) for m in (4, 8)],
    "rx-5700-xt", "rx-6800", "rx-6900-xt", "gtx-1060-6gb", "gtx-1070", "gtx-1080-ti",
    "rtx-2060", "rtx-2070", "rtx-2080", "rtx-2080-ti", "rtx-3060-ti", "rtx-3070", "rtx-3080", "rtx-3090",
    "cmp-30hx", "cmp-40hx", "cmp-50hx", "cmp-90hx", "cmp-170hx", "p104-100",
    "rtx-4090", "rtx-5090", "rtx-a4000", "rtx-a5000", "rtx-a6000", "a40", "l4", "l40s", "t4", "v100-16gb",
    "a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h200", "mi250x", "mi300x",
]  # fmt: skip


def test_catalog_has_the_required_models_with_unique_slugs() -> None:
    slugs = [spec.slug for spec in CATALOG]
    assert len(slugs) >= 40
    assert len(set(slugs)) == len(slugs)
    assert not set(REQUIRED_SLUGS) - set(slugs)


def test_catalog_specs_are_plausible() -> None:
    for spec in CATALOG:
        assert spec.vendor in ("nvidia", "amd"), spec.slug
        assert Decimal(2) <= spec.vram_gb <= Decimal(192), spec.slug
        assert 150 <= spec.mem_bandwidth_gbs <= 5300, spec.slug
        assert 2010 <= spec.launch_year <= 2025, spec.slug
        assert 60 <= spec.tdp_w <= 750, spec.slug
        assert (spec.compute_capability is not None) == (spec.vendor == "nvidia"), spec.slug
        assert spec.fp32_tflops > 0 and spec.fp16_tflops > 0, spec.slug
        assert spec.framework_support or spec.framework_note, spec.slug
        # The database keeps one decimal place; more would make catalog_sync rewrite the row every time.
        assert spec.fp16_tflops == spec.fp16_tflops.quantize(Decimal("0.1")), spec.slug
        assert spec.fp32_tflops == spec.fp32_tflops.quantize(Decimal("0.1")), spec.slug


@pytest.mark.parametrize(
    ("slug", "vram", "bandwidth", "fp16", "year", "price"),
    [
        ("rtx-4090", 24, 1008, Decimal("165.2"), 2022, 1599),
        ("rtx-3090", 24, 936, Decimal("71.0"), 2020, 1499),
        ("h100-sxm", 80, 3350, Decimal("989.4"), 2022, None),
        ("a100-80gb", 80, 2039, Decimal("312.0"), 2020, None),
        ("rx-580-8gb", 8, 256, Decimal("6.2"), 2017, 229),
        ("mi300x", 192, 5300, Decimal("1307.4"), 2023, None),
    ],
)
def test_known_specs(slug, vram, bandwidth, fp16, year, price) -> None:
    spec = SPECS[slug]
    actual = (spec.vram_gb, spec.mem_bandwidth_gbs, spec.fp16_tflops, spec.launch_year, spec.launch_price_usd)
    assert actual == (Decimal(vram), bandwidth, fp16, year, price)


def test_mining_cards_are_flagged() -> None:
    assert {s.slug for s in CATALOG if s.is_mining_card} >= {"p104-100", "cmp-30hx", "cmp-170hx"}
    assert not SPECS["rtx-3090"].is_mining_card


@pytest.mark.parametrize(
    ("slug", "tier"),
    [
        ("rx-580-8gb", Tier.UNSUITABLE), ("rx-470-4gb", Tier.UNSUITABLE), ("rx-5700-xt", Tier.UNSUITABLE),
        ("rx-6800", Tier.UNSUITABLE), ("gtx-1070", Tier.UNSUITABLE), ("gtx-1080-ti", Tier.UNSUITABLE),
        ("p104-100", Tier.UNSUITABLE), ("cmp-170hx", Tier.UNSUITABLE), ("cmp-90hx", Tier.UNSUITABLE),
        ("rtx-3060-ti", Tier.UNSUITABLE), ("rtx-3070", Tier.UNSUITABLE), ("rtx-2080", Tier.UNSUITABLE),
        ("rtx-2080-ti", Tier.INFERENCE), ("rtx-3060", Tier.INFERENCE), ("rtx-3080", Tier.INFERENCE),
        ("rtx-a4000", Tier.INFERENCE), ("t4", Tier.INFERENCE), ("l4", Tier.INFERENCE),
        ("rtx-3090", Tier.FINE_TUNING), ("rtx-4090", Tier.FINE_TUNING), ("rtx-5090", Tier.FINE_TUNING),
        ("rtx-a6000", Tier.FINE_TUNING), ("l40s", Tier.FINE_TUNING), ("a40", Tier.FINE_TUNING),
        ("a100-40gb", Tier.TRAINING), ("a100-80gb", Tier.TRAINING), ("h100-pcie", Tier.TRAINING),
        ("h100-sxm", Tier.TRAINING), ("h200", Tier.TRAINING), ("mi250x", Tier.TRAINING), ("mi300x", Tier.TRAINING),
    ],
)  # fmt: skip
def test_tier_of_catalog_models(slug, tier) -> None:
    assert gpu_tier_classify(spec=SPECS[slug])[0] == tier


def test_tier_rule_reasons_name_every_problem() -> None:
    tier, reason = gpu_tier_classify(spec=SPECS["rx-580-4gb"])
    assert tier == Tier.UNSUITABLE
    assert "ROCm" in reason and "4 GB" in reason and "tensor/matrix cores" in reason
    assert "CMP" in gpu_tier_classify(spec=SPECS["cmp-50hx"])[1]
    assert "bandwidth" in gpu_tier_classify(spec=SPECS["l4"])[1]
    for spec in CATALOG:
        assert 0 < len(gpu_tier_classify(spec=spec)[1]) <= 300


def test_tier_rule_is_a_pure_function_of_specs_at_the_thresholds() -> None:
    base = SPECS["rtx-4090"]
    assert gpu_tier_classify(spec=replace(base, vram_gb=Decimal("9.9")))[0] == Tier.UNSUITABLE
    assert gpu_tier_classify(spec=replace(base, vram_gb=Decimal(10)))[0] == Tier.INFERENCE
    assert gpu_tier_classify(spec=replace(base, vram_gb=Decimal("19.9")))[0] == Tier.INFERENCE
    assert gpu_tier_classify(spec=replace(base, vram_gb=Decimal(20)))[0] == Tier.FINE_TUNING
    assert gpu_tier_classify(spec=replace(base, vram_gb=Decimal(20), mem_bandwidth_gbs=599))[0] == Tier.INFERENCE
    assert gpu_tier_classify(spec=replace(base, vram_gb=Decimal(40), mem_bandwidth_gbs=1499))[0] == Tier.FINE_TUNING
    assert gpu_tier_classify(spec=replace(base, vram_gb=Decimal(40), mem_bandwidth_gbs=1500))[0] == Tier.TRAINING
    assert gpu_tier_classify(spec=replace(base, tensor_cores=False))[0] == Tier.UNSUITABLE
    no_support = replace(base, framework_support=False, framework_note="dropped from ROCm")
    assert gpu_tier_classify(spec=no_support) == (Tier.UNSUITABLE, "Dropped from ROCm.")


def test_upgrade_options_are_suitable_catalog_models() -> None:
    for option in UPGRADE_OPTIONS:
        assert gpu_tier_classify(spec=SPECS[option.slug])[0] != Tier.UNSUITABLE
        assert option.unit_cost_usd > 0


def test_reference_prices() -> None:
    assert SPECS["rtx-4090"].reference_price_micros == 400_000
    assert SPECS["h100-sxm"].reference_price_micros == 2_500_000
    for spec in CATALOG:
        unsuitable = gpu_tier_classify(spec=spec)[0] == Tier.UNSUITABLE
        assert (spec.reference_price_micros == 0) == unsuitable, spec.slug


# --- sync ----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_post_migrate_synced_the_catalog_with_tiers() -> None:
    assert GPUModel.objects.count() == len(CATALOG)
    rx580 = GPUModel.objects.get(slug="rx-580-8gb")
    assert rx580.tier == Tier.UNSUITABLE and "ROCm" in rx580.tier_reason
    assert GPUModel.objects.get(slug="h100-sxm").tier == Tier.TRAINING


@pytest.mark.django_db
def test_catalog_sync_is_idempotent_and_repairs_drift() -> None:
    assert catalog_sync() == {"created": 0, "updated": 0, "unchanged": len(CATALOG)}
    GPUModel.objects.filter(slug="rtx-3090").update(tier=Tier.TRAINING, vram_gb=Decimal(1))
    GPUModel.objects.filter(slug="l4").delete()
    assert catalog_sync() == {"created": 1, "updated": 1, "unchanged": len(CATALOG) - 2}
    assert GPUModel.objects.get(slug="rtx-3090").tier == Tier.FINE_TUNING
    assert catalog_sync()["unchanged"] == len(CATALOG)


# --- name matching -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("RX580 8GB", "rx-580-8gb"), ("rx 580", "rx-580-8gb"), ("RX 580 4G", "rx-580-4gb"),
        ("rx570 8 gb", "rx-570-8gb"), ("Sapphire Nitro+ RX 580 8G", "rx-580-8gb"),
        ("Radeon RX 580 Series", "rx-580-8gb"), ("rx 470 4g", "rx-470-4gb"),
        ("3090", "rtx-3090"), ("RTX3090", "rtx-3090"), ("rtx 3060ti lhr", "rtx-3060-ti"), ("3060 Ti", "rtx-3060-ti"),
        ("P104-100", "p104-100"), ("p104", "p104-100"), ("GTX1070", "gtx-1070"), ("1080ti", "gtx-1080-ti"),
        ("GeForce GTX 1080 Ti OC", "gtx-1080-ti"), ("Radeon RX 6800", "rx-6800"), ("RX 6900XT", "rx-6900-xt"),
        ("rx5700xt", "rx-5700-xt"), ("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("NVIDIA A100-PCIE-40GB", "a100-40gb"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"), ("4090", "rtx-4090"), ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"), ("H100 SXM5 80GB", "h100-sxm"), ("Tesla V100-SXM2-32GB", "v100-32gb"),
        ("Tesla T4", "t4"), ("CMP 170HX", "cmp-170hx"), ("nvidia cmp 30hx", "cmp-30hx"), ("170hx", "cmp-170hx"),
        ("AMD Instinct MI300X", "mi300x"), ("RTX A4000", "rtx-a4000"), ("A40", "a40"), ("L40S", "l40s"),
        ("NVIDIA H200", "h200"), ("EVGA GeForce RTX 3080 FTW3 Ultra LHR", "rtx-3080"), ("  rtx   2060 ", "rtx-2060"),
        ("NVIDIA GeForce RTX 4090 23GB", "rtx-4090"), ("NVIDIA A100 86GB", "a100-80gb"), ("RTX 3090 24 GB", "rtx-3090"),
    ],
)  # fmt: skip
def test_match_slug_forgives_how_miners_write_names(name, slug) -> None:
    assert match_slug(name) == slug


@pytest.mark.parametrize("name", ["", "foo", "GTX 1060 3GB", "RX 580 16GB", "Antminer S19", "x" * 500, "8GB"])
def test_match_slug_unknown_is_none(name) -> None:
    assert match_slug(name) is None


def test_name_index_has_no_accidental_collisions() -> None:
    """A lookup key maps to several entries only for memory variants of one model (RX 4xx/5xx, V100, A100)."""
    for key, specs in _index().items():
        if len(specs) > 1:
            families = {re.sub(r"\s*\d+GB.*", "", spec.name) for spec in specs}
            assert len(families) == 1, (key, [s.slug for s in specs])
            assert sum(spec.default_variant for spec in specs) == 1, key


@pytest.mark.django_db
def test_gpu_model_match_returns_the_catalog_row() -> None:
    model = gpu_model_match(name="NVIDIA GeForce RTX 4090")
    assert model is not None and model.slug == "rtx-4090"
    assert gpu_model_match(name="Voodoo 5 6000") is None


# --- API -----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_gpu_models_api_is_public_and_paginated(api_client) -> None:
    response = api_client.get("/api/v1/gpu-models/", {"page_size": 10})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(CATALOG)
    assert len(body["results"]) == 10 and body["next"]
    item = body["results"][0]
    assert {"slug", "tier", "tier_reason", "vram_gb", "fp16_tflops", "reference_price_per_gpu_hour"} <= set(item)


@pytest.mark.django_db
def test_gpu_models_api_filters(api_client) -> None:
    body = api_client.get("/api/v1/gpu-models/", {"tier": "training", "page_size": 100}).json()
    assert {item["slug"] for item in body["results"]} == {
        "a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h200", "mi250x", "mi300x",
    }  # fmt: skip
    body = api_client.get("/api/v1/gpu-models/", {"vendor": "amd", "tier": "unsuitable", "page_size": 100}).json()
    assert body["count"] > 0 and all(item["vendor"] == "amd" for item in body["results"])
    assert "rx-580-8gb" in {item["slug"] for item in body["results"]}


@pytest.mark.django_db
@pytest.mark.parametrize(("param", "allowed"), [("tier", "fine_tuning"), ("vendor", "nvidia")])
def test_gpu_models_api_bad_filter_is_400_naming_allowed_values(api_client, param, allowed) -> None:
    response = api_client.get("/api/v1/gpu-models/", {param: "bogus"})
    assert response.status_code == 400
    assert allowed in response.json()["detail"]


@pytest.mark.django_db
def test_gpu_model_detail(api_client) -> None:
    response = api_client.get("/api/v1/gpu-models/h100-sxm/")
    assert response.status_code == 200
    body = response.json()
    assert body["tier"] == "training" and body["reference_price_per_gpu_hour"] == "2.500000"
    assert body["vram_gb"] == "80.0"
    assert api_client.get("/api/v1/gpu-models/no-such-card/").status_code == 404
