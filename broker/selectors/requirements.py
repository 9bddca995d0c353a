"""Job requirements: parse a booking/quote payload into a JobSpec, turn it into node filters, and
refuse requirements that no listed hardware can ever meet (naming the market's maximum)."""

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Count, F, FloatField, Max, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from broker.models import JobMode
from broker.selectors.offers import _tier_rank_expr
from common.errors import ValidationFailed
from common.money import format_usd, from_micros, prorate, to_micros
from marketplace.models import TIER_RANK, GPUModel, Node, Region, Tier

MAX_GPU_COUNT = 64
MAX_DURATION_HOURS = Decimal(720)
MAX_PRICE = Decimal(1000)  # dollars per GPU-hour
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class ImpossibleRequirement(ValidationFailed):
    code = "impossible_requirement"


@dataclass
class JobSpec:
    """A validated booking: requirements, workload, mode and price (micros), duration (seconds)."""

    gpu_count: int
    name: str = ""
    min_gpu_ram: Decimal | None = None
    gpu_models: list[str] = field(default_factory=list)
    min_compute_cap: Decimal | None = None
    min_tier: str = ""
    regions: list[str] = field(default_factory=list)
    min_reliability: float | None = None
    verified_only: bool = True
    min_inet_down: int | None = None
    min_cpu_cores_per_gpu: int | None = None
    min_ram_gb_per_gpu: int | None = None
    min_disk_gb_per_gpu: int | None = None
    image: str = ""
    command: str = ""
    env: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    mode: str = JobMode.ON_DEMAND.value
    max_price_micros: int | None = None
    bid_micros: int | None = None
    earliest_start: datetime | None = None
    latest_start: datetime | None = None
    duration_seconds: int | None = None

    @property
    def price_limit_micros(self) -> int | None:
        return self.bid_micros if self.mode == JobMode.INTERRUPTIBLE else self.max_price_micros

    @property
    def max_cost_micros(self) -> int | None:
        """The escrow a booking holds: price limit × GPUs × duration."""
        limit = self.price_limit_micros
        if limit is None or self.duration_seconds is None:
            return None
        return prorate(micros_per_hour=limit, seconds=self.duration_seconds, gpus=self.gpu_count)

    def fingerprint(self) -> str:
        """A stable hash of the booking, to tell an idempotent replay from a different request."""
        data = asdict(self)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.errors.items())
            raise ValidationFailed(summary, details=self.errors)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _decimal(
    errs: _Errors, data: dict[str, Any], name: str, *, low: Decimal, high: Decimal, low_inclusive: bool = True
) -> Decimal | None:
    raw = data.get(name)
    if _absent(raw):
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Decimal)):
        errs.add(name, "Must be a number.")
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        errs.add(name, f"Must be a number, not {str(raw)[:40]!r}.")
        return None
    if not value.is_finite():
        errs.add(name, "Must be a finite number.")
        return None
    too_low = value < low if low_inclusive else value <= low
    if too_low or value > high:
        bound = f">= {low}" if low_inclusive else f"> {low}"
        errs.add(name, f"Must be {bound} and <= {high}.")
        return None
    return value


def _integer(errs: _Errors, data: dict[str, Any], name: str, *, low: int, high: int) -> int | None:
    value = _decimal(errs, data, name, low=Decimal(low), high=Decimal(high))
    if value is None:
        return None
    if value != value.to_integral_value():
        errs.add(name, "Must be a whole number.")
        return None
    return int(value)


def _money(errs: _Errors, data: dict[str, Any], name: str) -> int | None:
    value = _decimal(errs, data, name, low=Decimal(0), high=MAX_PRICE, low_inclusive=False)
    if value is None:
        return None
    if value.as_tuple().exponent < -6:  # type: ignore[operator]
        errs.add(name, "At most 6 decimal places.")
        return None
    return to_micros(amount=value)


def _bool(errs: _Errors, data: dict[str, Any], name: str, default: bool) -> bool:
    raw = data.get(name)
    if _absent(raw):
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(raw, str) and raw.strip().lower() in ("false", "0", "no", "off"):
        return False
    errs.add(name, "Must be true or false.")
    return default


def _str_list(errs: _Errors, data: dict[str, Any], name: str) -> list[str]:
    raw = data.get(name)
    if _absent(raw):
        return []
    if isinstance(raw, str):
        raw = [part for part in re.split(r"[\s,]+", raw) if part]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(item, str) for item in raw):
        errs.add(name, "Must be a list of strings.")
        return []
    if len(raw) > 100:
        errs.add(name, "At most 100 items.")
        return []
    out: list[str] = []
    for item in raw:
        item = item.strip().lower()
        if item and item not in out:
            out.append(item)
    return out


def _datetime(errs: _Errors, data: dict[str, Any], name: str) -> datetime | None:
    raw = data.get(name)
    if _absent(raw):
        return None
    if isinstance(raw, datetime):
        value: datetime | None = raw
    elif isinstance(raw, str):
        try:
            value = parse_datetime(raw.strip())
        except ValueError:
            value = None
    else:
        value = None
    if value is None:
        errs.add(name, "Must be an ISO 8601 date-time, e.g. 2026-12-01T09:00:00Z.")
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    return value


def job_spec_parse(*, data: dict[str, Any], for_booking: bool = True) -> JobSpec:
    """Validate a booking (or, with for_booking=False, a quote) payload. Raises ValidationFailed (400)
    with per-field errors. Quotes need only `gpu_count`; a booking needs the workload, a price and a duration.
    """
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    errs = _Errors()
    gpu_count = _integer(errs, data, "gpu_count", low=1, high=MAX_GPU_COUNT)
    if gpu_count is None and "gpu_count" not in errs.errors:
        errs.add("gpu_count", "This field is required.")
    name = data.get("name") or ""
    if not isinstance(name, str) or len(name) > 200:
        errs.add("name", "Must be text of at most 200 characters.")
        name = ""
    min_tier = data.get("min_tier") or ""
    if min_tier and min_tier not in {t.value for t in Tier}:
        errs.add("min_tier", f"Must be one of: {', '.join(t.value for t in Tier)}.")
        min_tier = ""
    regions = _str_list(errs, data, "regions")
    bad_regions = [r for r in regions if r not in {r.value for r in Region}]
    if bad_regions:
        errs.add(
            "regions", f"Unknown region(s) {', '.join(bad_regions)}; allowed: {', '.join(r.value for r in Region)}."
        )
    gpu_models = _str_list(errs, data, "gpu_models")
    if gpu_models:
        known = set(GPUModel.objects.filter(slug__in=gpu_models).values_list("slug", flat=True))
        unknown = [slug for slug in gpu_models if slug not in known]
        if unknown:
            catalog = ", ".join(GPUModel.objects.order_by("slug").values_list("slug", flat=True)[:200])
            errs.add("gpu_models", f"Unknown GPU model slug(s) {', '.join(unknown)}; the catalog has: {catalog}.")
    min_rel = _decimal(errs, data, "min_reliability", low=Decimal(0), high=Decimal(1))
    mode = data.get("mode") or JobMode.ON_DEMAND.value
    if mode not in {m.value for m in JobMode}:
        errs.add("mode", f"Must be one of: {', '.join(m.value for m in JobMode)}.")
        mode = JobMode.ON_DEMAND.value
    image = data.get("image") or ""
    if not isinstance(image, str) or len(image) > 300 or any(c.isspace() for c in image):
        errs.add("image", "Must be a container image reference (at most 300 characters, no spaces).")
        image = ""
    elif for_booking and not image:
        errs.add("image", "This field is required.")
    command = data.get("command") or ""
    if not isinstance(command, str) or len(command) > 10_000:
        errs.add("command", "Must be text of at most 10,000 characters.")
        command = ""
    env = data.get("env") or {}
    if not isinstance(env, dict) or len(env) > 100:
        errs.add("env", "Must be an object of at most 100 string values.")
        env = {}
    elif not all(
        isinstance(k, str) and _ENV_KEY.fullmatch(k) and isinstance(v, str) and len(v) <= 4096 for k, v in env.items()
    ):
        errs.add(
            "env", "Keys must be variable names (letters, digits, _) and values strings of at most 4096 characters."
        )
        env = {}
    ports_raw = data.get("ports") or []
    ports: list[int] = []
    if (
        not isinstance(ports_raw, list)
        or len(ports_raw) > 50
        or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports_raw)
    ):
        errs.add("ports", "Must be a list of at most 50 port numbers from 1 to 65535.")
    else:
        ports = sorted(set(ports_raw))
    max_price = _money(errs, data, "max_price")
    bid = _money(errs, data, "bid")
    earliest = _datetime(errs, data, "earliest_start")
    latest = _datetime(errs, data, "latest_start")
    hours = _decimal(errs, data, "duration_hours", low=Decimal(0), high=MAX_DURATION_HOURS, low_inclusive=False)
    duration_seconds = None if hours is None else max(1, math.ceil(hours * 3600))
    if for_booking:
        if hours is None and "duration_hours" not in errs.errors:
            errs.add("duration_hours", "This field is required (hours, > 0 and <= 720).")
        if mode == JobMode.INTERRUPTIBLE and bid is None and "bid" not in errs.errors:
            errs.add("bid", "An interruptible job needs a bid (dollars per GPU-hour).")
        if mode != JobMode.INTERRUPTIBLE and max_price is None and "max_price" not in errs.errors:
            errs.add("max_price", f"A {mode} job needs a max_price (dollars per GPU-hour).")
    if mode == JobMode.RESERVED:
        if for_booking and earliest is None and "earliest_start" not in errs.errors:
            errs.add("earliest_start", "A reserved job needs a start window: earliest_start and latest_start.")
        if for_booking and latest is None and "latest_start" not in errs.errors:
            errs.add("latest_start", "A reserved job needs a start window: earliest_start and latest_start.")
        if earliest and latest and earliest >= latest:
            errs.add("latest_start", "Must be after earliest_start.")
        if latest and latest <= timezone.now():
            errs.add("latest_start", "Must be in the future.")
    elif earliest is not None or latest is not None:
        errs.add("earliest_start", "Only reserved jobs take a start window.")
    min_gpu_ram = _decimal(errs, data, "min_gpu_ram", low=Decimal(0), high=Decimal(100_000))
    min_cc = _decimal(errs, data, "min_compute_cap", low=Decimal(0), high=Decimal("99.9"))
    verified_only = _bool(errs, data, "verified_only", True)
    min_inet_down = _integer(errs, data, "min_inet_down", low=0, high=10_000_000)
    min_cpu = _integer(errs, data, "min_cpu_cores_per_gpu", low=0, high=10_000)
    min_ram = _integer(errs, data, "min_ram_gb_per_gpu", low=0, high=1_000_000)
    min_disk = _integer(errs, data, "min_disk_gb_per_gpu", low=0, high=10_000_000)
    errs.raise_if_any()
    assert gpu_count is not None
    return JobSpec(
        gpu_count=gpu_count,
        name=name.strip(),
        min_gpu_ram=min_gpu_ram,
        gpu_models=gpu_models,
        min_compute_cap=min_cc,
        min_tier=min_tier,
        regions=regions,
        min_reliability=float(min_rel) if min_rel is not None else None,
        verified_only=verified_only,
        min_inet_down=min_inet_down,
        min_cpu_cores_per_gpu=min_cpu,
        min_ram_gb_per_gpu=min_ram,
        min_disk_gb_per_gpu=min_disk,
        image=image,
        command=command,
        env=dict(env),
        ports=ports,
        mode=mode,
        max_price_micros=max_price,
        bid_micros=bid,
        earliest_start=earliest,
        latest_start=latest,
        duration_seconds=duration_seconds,
    )


def spec_hardware_q(spec: JobSpec) -> Q:
    """What the hardware must have (things that do not change while a node stays listed)."""
    q = Q()
    if spec.min_gpu_ram is not None:
        q &= Q(gpu_model__vram_gb__gte=spec.min_gpu_ram)
    if spec.gpu_models:
        q &= Q(gpu_model__slug__in=spec.gpu_models)
    if spec.min_compute_cap is not None:
        q &= Q(gpu_model__compute_capability__gte=spec.min_compute_cap)
    if spec.min_tier:
        q &= Q(tier_rank__gte=TIER_RANK[Tier(spec.min_tier)])
    if spec.regions:
        q &= Q(region__in=spec.regions)
    if spec.min_inet_down is not None:
        q &= Q(inet_down_mbps__gte=spec.min_inet_down)
    if spec.min_cpu_cores_per_gpu:
        q &= Q(cpu_cores__gte=F("gpu_count") * spec.min_cpu_cores_per_gpu)
    if spec.min_ram_gb_per_gpu:
        q &= Q(ram_gb__gte=F("gpu_count") * spec.min_ram_gb_per_gpu)
    if spec.min_disk_gb_per_gpu:
        q &= Q(disk_gb__gte=F("gpu_count") * spec.min_disk_gb_per_gpu)
    return q


def spec_market_q(spec: JobSpec) -> Q:
    """Verification, reliability and price: things that can change over time."""
    q = Q()
    if spec.verified_only:
        q &= Q(verified=True)
    if spec.min_reliability is not None:
        q &= Q(reliability__gte=spec.min_reliability)
    if spec.mode == JobMode.INTERRUPTIBLE:
        if spec.bid_micros is not None:
            q &= Q(min_bid_micros__lte=spec.bid_micros)
    elif spec.max_price_micros is not None:
        q &= Q(price_micros__lte=spec.max_price_micros)
    return q


def _listed_hardware() -> QuerySet[Node]:
    """Listed nodes with the one annotation the hardware filters use (tier_rank); building the full offer
    annotations (free GPUs, performance per dollar) cost a third of a booking's CPU for nothing."""
    return Node.objects.filter(listed=True).annotate(tier_rank=_tier_rank_expr())


def requirements_check_possible(*, spec: JobSpec) -> None:
    """Raise ImpossibleRequirement (400) when no listed node could ever meet the hardware requirements,
    naming the requirement and the market's maximum.

    One aggregate query on the booking path (maxima, models and regions listed, the largest node meeting all
    requirements together); the lists of what is available are read only when refusing."""
    listed = _listed_hardware()
    aggregates: dict[str, Any] = {
        "gpus": Max("gpu_count"),
        "vram": Max("gpu_model__vram_gb"),
        "cc": Max("gpu_model__compute_capability"),
        "tier": Max("tier_rank"),
        "inet": Max("inet_down_mbps"),
        "cpu": Max(Cast("cpu_cores", FloatField()) / Cast("gpu_count", FloatField())),
        "ram": Max(Cast("ram_gb", FloatField()) / Cast("gpu_count", FloatField())),
        "disk": Max(Cast("disk_gb", FloatField()) / Cast("gpu_count", FloatField())),
        "together": Max("gpu_count", filter=spec_hardware_q(spec)),
    }
    if spec.gpu_models:
        aggregates["models_listed"] = Count("pk", filter=Q(gpu_model__slug__in=spec.gpu_models))
    if spec.regions:
        aggregates["in_regions"] = Count("pk", filter=Q(region__in=spec.regions))
    top = listed.aggregate(**aggregates)
    if top["gpus"] is None:
        raise ImpossibleRequirement(
            "No hardware is listed on the market yet, so no requirement can be met.", details={"requirement": None}
        )

    def refuse(requirement: str, message: str, maximum: Any) -> None:
        raise ImpossibleRequirement(message, details={"requirement": requirement, "market_max": str(maximum)})

    if spec.gpu_count > top["gpus"]:
        refuse("gpu_count", f"gpu_count {spec.gpu_count} exceeds the largest node ({top['gpus']} GPUs).", top["gpus"])
    if spec.min_gpu_ram is not None and spec.min_gpu_ram > top["vram"]:
        refuse(
            "min_gpu_ram",
            f"min_gpu_ram {_num(spec.min_gpu_ram)} exceeds the largest GPU ({_num(top['vram'])} GB).",
            _num(top["vram"]),
        )
    if spec.min_compute_cap is not None and (top["cc"] is None or spec.min_compute_cap > top["cc"]):
        refuse(
            "min_compute_cap",
            f"min_compute_cap {spec.min_compute_cap} exceeds the highest listed compute capability ({top['cc']}).",
            top["cc"],
        )
    if spec.min_tier and TIER_RANK[Tier(spec.min_tier)] > (top["tier"] or 0):
        best = next((t.value for t, r in TIER_RANK.items() if r == top["tier"]), "unsuitable")
        refuse("min_tier", f"min_tier {spec.min_tier} exceeds the best listed tier ({best}).", best)
    if spec.min_inet_down is not None and spec.min_inet_down > top["inet"]:
        refuse(
            "min_inet_down",
            f"min_inet_down {spec.min_inet_down} exceeds the fastest listed node ({top['inet']} Mbit/s).",
            top["inet"],
        )
    for name, key, unit in (
        ("min_cpu_cores_per_gpu", "cpu", "CPU cores per GPU"),
        ("min_ram_gb_per_gpu", "ram", "GB RAM per GPU"),
        ("min_disk_gb_per_gpu", "disk", "GB disk per GPU"),
    ):
        wanted = getattr(spec, name)
        if wanted and wanted > (top[key] or 0):
            most = math.floor(top[key] or 0)
            refuse(name, f"{name} {wanted} exceeds the most any listed node offers ({most} {unit}).", most)
    if spec.gpu_models and not top["models_listed"]:
        available = sorted(set(listed.values_list("gpu_model__slug", flat=True)))
        refuse(
            "gpu_models",
            f"None of gpu_models {', '.join(spec.gpu_models)} is listed; listed models: {', '.join(available)}.",
            ", ".join(available),
        )
    if spec.regions and not top["in_regions"]:
        available = sorted(set(listed.values_list("region", flat=True)))
        refuse(
            "regions",
            f"No node is listed in regions {', '.join(spec.regions)}; listed regions: {', '.join(available)}.",
            ", ".join(available),
        )
    # Each requirement alone is possible; together?
    together = top["together"]
    if together is None:
        raise ImpossibleRequirement(
            "No listed node meets all the hardware requirements together "
            "(GPU memory, models, compute capability, tier, regions, bandwidth, per-GPU CPU/RAM/disk).",
            details={"requirement": "combination"},
        )
    if spec.gpu_count > together:
        refuse(
            "gpu_count",
            f"gpu_count {spec.gpu_count} exceeds the largest node meeting the other requirements ({together} GPUs).",
            together,
        )


def _num(value: Decimal | None) -> str:
    if value is None:
        return "none"
    return format(value.normalize(), "f")


def price_text(micros: int | None) -> str | None:
    return None if micros is None else format(from_micros(micros=micros), "f")


def usd(micros: int) -> str:
    return format_usd(micros=micros)
