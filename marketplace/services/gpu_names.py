"""Forgiving GPU name matching: "RX580 8GB", "rtx 3060ti lhr", "NVIDIA A100-SXM4-80GB" → catalog slugs.

Used by the fleet assessment (names as miners write them) and by the node agent API (names as drivers report
them). ``match_slug`` is pure (catalog data only, no database); ``gpu_model_match`` returns the catalog row.

How a name is matched:

1. Lower-case it; write memory sizes one way ("8G", "8 GB", "8gig" → "8gb"); write form factors one way
   ("SXM4" → "sxm", "PCI-E" → "pcie"); split on anything that is not a letter or digit.
2. Drop words that do not identify a model: vendor and brand words (NVIDIA, GeForce, AMD, Radeon, Tesla,
   Instinct, board partners such as Sapphire or MSI) and edition words (LHR, OC, Gaming, Founders Edition, ...).
3. Join what is left without spaces (the "key": "rtx3060ti") and look it up among the keys of every catalog
   name and alias, with and without their series prefix (RTX/GTX/RX/CMP), so "3090", "1080ti" and "580" match.
   If nothing matches, try again without form-factor words (SXM/PCIe/HBM3...).
4. A memory size in the name picks among variants by VRAM ("RX 580 4GB"), within 10% (drivers round and mix
   GiB/GB: "A100 86GB" is the 80 GB card); a size no variant has is no match ("GTX 1060 3GB" is not the 6 GB
   card). Without a size, the variant marked ``default_variant`` wins ("RX 580" → the 8 GB card, the common one
   in mining farms).

Unknown names give ``None``: callers report them back with the raw name, never drop them.

Mining ASICs (Antminer, Whatsminer, AvalonMiner, …) are not GPUs at all: ``is_mining_asic`` recognises them by
maker or product-line words, by a Bitmain model name alone ("S19 Pro", "L7") or by a hash rate in TH/s or GH/s,
so the fleet assessment can say "not a GPU" instead of "unknown GPU model".
"""

import re
from collections import defaultdict
from decimal import Decimal
from functools import lru_cache

from marketplace.catalog_data import CATALOG, GPUSpec
from marketplace.models import GPUModel

_NOISE = (
    # vendors and brands
    "nvidia geforce amd ati radeon tesla instinct quadro graphics card gpu series video controller corporation inc "
    # board partners and product lines
    "sapphire nitro pulse msi armor ventus asus rog strix tuf dual gigabyte aorus windforce eagle evga ftw ftw3 xc "
    "xc3 sc zotac amp trinity palit gamerock gainward pny xfx powercolor red devil dragon fighter inno3d galax kfa2 "
    "colorful biostar asrock phantom challenger mech suprim "
    # editions and marketing words
    "lhr nonlhr non oc gaming founders edition fe blower turbo ultra plus mining miner used x pcs gpus ref "
    "reference model"
)
NOISE_WORDS = frozenset(_NOISE.split())
SERIES_PREFIXES = ("rtx", "gtx", "rx", "cmp")
MEMORY_TOLERANCE = Decimal("0.1")
FORM_FACTOR_WORDS = frozenset({"sxm", "pcie", "nvl", "hgx", "dgx", "oam", "hbm", "hbm2", "hbm2e", "hbm3", "hbm3e"})

_MEMORY = re.compile(r"(\d+)\s*(?:gb|gib|gig|gigs|g)(?![a-z])")
_SXM = re.compile(r"sxm\d*")
_PCIE = re.compile(r"pci[\s\-_]*e(?:xpress)?|pci(?![a-z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


def _tokens(name: str) -> tuple[list[str], int | None]:
    """Normalised identifying words of a name, and the memory size it states (GB), if any."""
    text = name.lower()
    text = _MEMORY.sub(lambda m: f" {m.group(1)}gb ", text)
    text = _SXM.sub(" sxm ", text)
    text = _PCIE.sub(" pcie ", text)
    words = [word for word in _SPLIT.split(text) if word]
    memory: int | None = None
    kept: list[str] = []
    for word in words:
        if re.fullmatch(r"\d+gb", word):
            memory = int(word[:-2])
        elif word not in NOISE_WORDS:
            kept.append(word)
    return kept, memory


def _keys(words: list[str]) -> list[str]:
    """The lookup keys of a word list: joined, and joined without a leading series prefix."""
    key = "".join(words)
    keys = [key] if key else []
    for prefix in SERIES_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isdigit():
            keys.append(key[len(prefix) :])
    return keys


@lru_cache(maxsize=1)
def _index() -> dict[str, tuple[GPUSpec, ...]]:
    """Lookup key → catalog entries (several only for memory variants of one model)."""
    index: dict[str, list[GPUSpec]] = defaultdict(list)
    for spec in CATALOG:
        for name in (spec.name, spec.slug, *spec.aliases):
            words, _ = _tokens(name)
            for key in _keys(words):
                if spec not in index[key]:
                    index[key].append(spec)
    return {key: tuple(specs) for key, specs in index.items()}


def _pick(candidates: tuple[GPUSpec, ...], memory: int | None) -> GPUSpec | None:
    if memory is not None:
        # Drivers report memory in GiB, MiB or decimal GB ("81920 MiB", "85.9 GB" for an 80 GB card): a stated size
        # within 10% of a variant's VRAM picks it, the closest first.
        stated = Decimal(memory)
        sized = sorted(
            (abs(spec.vram_gb - stated), spec.slug, spec)
            for spec in candidates
            if abs(spec.vram_gb - stated) <= spec.vram_gb * MEMORY_TOLERANCE
        )
        if not sized:
            return None
        closest = [spec for distance, _, spec in sized if distance == sized[0][0]]
        if len(closest) == 1:
            return closest[0]
        candidates = tuple(closest)
    if len(candidates) == 1:
        return candidates[0]
    defaults = [spec for spec in candidates if spec.default_variant]
    return defaults[0] if len(defaults) == 1 else None


def match_slug(name: str) -> str | None:
    """The catalog slug a GPU name refers to, or None when it cannot be matched (see the module docstring)."""
    if not name or len(name) > 200:
        return None
    words, memory = _tokens(name)
    index = _index()
    attempts = [words, [word for word in words if word not in FORM_FACTOR_WORDS]]
    for attempt in attempts:
        for key in _keys(attempt):
            candidates = index.get(key)
            if candidates:
                spec = _pick(candidates, memory)
                return spec.slug if spec else None
    return None


ASIC_MAKER_WORDS = frozenset(
    {
        "antminer",
        "whatsminer",
        "avalon",
        "avalonminer",
        "innosilicon",
        "goldshell",
        "iceriver",
        "jasminer",
        "bitmain",
        "microbt",
        "canaan",
        "ibelink",
        "bitaxe",
        "ebang",
        "ebit",
        "strongu",
        "sealminer",
        "elphapex",
        "auradine",
        "teraflux",
        "volcminer",
    }
)
_ASIC_MODEL = re.compile(r"(s9|s11|s15|s17|s19|s21|t9|t17|t19|t21|l3|l7|l9|ka3|ks3|ks5|e9|d7|d9|k7|kd6)[a-z+]*")
_ASIC_HASHRATE = re.compile(r"\d+(?:\.\d+)?\s*(?:th|gh|ph)(?:/s|s)?(?![a-z])")


def is_mining_asic(name: str) -> bool:
    """Whether a name is a crypto-mining ASIC rather than a GPU ("Antminer S19 Pro", "Whatsminer M30S++", "L7")."""
    text = name.lower()
    words = [word for word in _SPLIT.split(text) if word]
    if not words:
        return False
    if any(word in ASIC_MAKER_WORDS for word in words) or "antminer" in text.replace(" ", ""):
        return True
    return bool(_ASIC_MODEL.fullmatch(words[0]) or _ASIC_HASHRATE.search(text))


def gpu_model_match(*, name: str) -> GPUModel | None:
    """The catalog GPUModel a GPU name refers to, or None (unknown names are the caller's to report)."""
    slug = match_slug(name)
    if slug is None:
        return None
    return GPUModel.objects.filter(slug=slug).first()
