"""The job specification: what a customer asks for, defined once.

A `JobSpec` is a validated, frozen, typed booking (or, without its workload, a quote request): `Requirements`
(the hardware and where/how good), `Terms` (mode, price limit, start window, duration) and `Workload` (what
runs), plus a name. Each field is declared once below, on its dataclass, with its kind (broker/jobspec_kinds.py:
bounds, parsing, JSON and text forms), its payload key, its label and its documentation. From that declaration:

- `FIELDS` / `PAYLOAD_KEYS`: the one field list. The API serializers (broker/api/jobs.py) and the portal form
  (broker/forms.py) are generated from it; the CLI (agent/rigshift_cli, no Django) builds the same keys
  (tests/cli/test_cli_payload.py checks they are equal); nothing else lists the fields
  (tests/broker/test_jobspec.py checks that too).
- `JobSpec.from_payload(data, booking=...)`: the one validation, with per-field errors (400). Bookings need
  the workload, a price limit for the mode and a duration; quotes need only `gpu_count`.
- `to_model_fields()` / `from_job(job)`: to and from the Job row; `to_json(part)`: the API's output;
  `rows()`: the job pages' text; `fingerprint()`: tells an idempotent replay from a different booking.

Bookings (broker/services/jobs.py), quotes (broker/services/quotes.py), the node filters
(broker/selectors/requirements.py), the explanation (broker/services/explain.py) and the matching snapshot
(`SNAPSHOT_COLUMNS`, broker/services/matching.py) read the spec, not the payload.
"""

# spec_field() returns dataclasses.field(...), which RUF009 cannot see through:
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from broker.jobspec_kinds import (
    EMPTY_ENV,
    Choice,
    Count,
    Env,
    Errors,
    Flag,
    Hours,
    Kind,
    Money,
    Names,
    Number,
    Ports,
    Ratio,
    Text,
    When,
)
from broker.models import JobMode, Placement
from broker.workload_templates import TEMPLATE_BY_SLUG, TEMPLATE_CHOICES, TEMPLATES
from common.errors import ValidationFailed
from common.money import prorate
from marketplace.models import GPUModel, Node, Region, Tier

if TYPE_CHECKING:
    from broker.models import Job


class Need(enum.Enum):
    """When a field must be given: never, for a booking (not a quote), always."""

    NEVER = "never"
    BOOKING = "booking"
    ALWAYS = "always"


# The portal's fieldsets, in page order.
GROUPS = ("Job", "Hardware", "Location and quality", "Workload", "Mode, price and time")


@dataclass(frozen=True)
class Field:
    """One field: payload `key` (API JSON, portal form, CLI); `attr`, its dataclass attribute and Job column
    (`column=False`: a many-to-many of slugs); `part`, the dataclass it is on; `reason`, the matching engine's
    reason code for the filter it sets; `doc` is the API's description, `hint` the portal's help text."""

    kind: Kind
    label: str
    group: str
    key: str = ""
    attr: str = ""
    part: str = ""
    doc: str = ""
    hint: str = ""
    need: Need = Need.NEVER
    reason: str = ""
    column: bool = True
    late: bool = False  # added after bookings existed: left out of the fingerprint while at its default


def spec_field(kind: Kind, label: str, group: str, *, required: bool = False, **info: Any) -> Any:
    """Declare a dataclass attribute as a JobSpec field (its default: the kind's; `required`: none)."""
    meta = {"field": Field(kind=kind, label=label, group=group, **info)}
    if required:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default_factory=kind.default, metadata=meta)


HW, WHERE, TERMS = GROUPS[1], GROUPS[2], GROUPS[4]
MODE_CHOICES = tuple(JobMode.choices)


@dataclass(frozen=True)
class Requirements:
    """What the node must have, and where and how good it must be."""

    gpu_count: int = spec_field(
        Count(1, 64), "GPUs (on one node)", HW, required=True, need=Need.ALWAYS, reason="no_node_with_gpu_count"
    )
    min_gpu_ram: Decimal | None = spec_field(
        Number(Decimal(0), Decimal("99999.9"), places=1, digits=6), "Min GPU memory (GB)", HW, reason="gpu_ram"
    )
    gpu_models: tuple[str, ...] = spec_field(
        Names(max_length=40),
        "Allowed GPU models",
        HW,
        column=False,
        reason="gpu_model",
        doc="GPU catalog slugs, e.g. rtx-4090",
        hint="None selected: any model that meets the rest.",
    )
    min_compute_cap: Decimal | None = spec_field(
        Number(Decimal(0), Decimal("99.9"), places=1, digits=3),
        "Min compute capability",
        HW,
        reason="compute_capability",
    )
    min_tier: str = spec_field(
        Choice(tuple(Tier.choices), hidden=(Tier.UNSUITABLE.value,)), "Min tier", HW, reason="tier"
    )
    regions: tuple[str, ...] = spec_field(
        Names(choices=tuple(Region.choices)), "Regions", WHERE, reason="region", hint="None selected: any region."
    )
    min_reliability: float | None = spec_field(
        Ratio(Decimal(0), Decimal(1), places=4, digits=5),
        "Min reliability",
        WHERE,
        reason="reliability",
        hint="A ratio from 0 to 1 (0.95 = 95.0% uptime over 30 days).",
    )
    verified_only: bool = spec_field(Flag(initial=True), "Verified nodes only", WHERE, reason="verified")
    min_inet_down: int | None = spec_field(
        Count(0, 10_000_000), "Min download (Mbit/s)", WHERE, reason="inet", doc="Mbit/s"
    )
    min_cpu_cores_per_gpu: int | None = spec_field(Count(0, 10_000), "Min CPU cores per GPU", WHERE, reason="cpu")
    min_ram_gb_per_gpu: int | None = spec_field(Count(0, 1_000_000), "Min RAM per GPU (GB)", WHERE, reason="ram")
    min_disk_gb_per_gpu: int | None = spec_field(Count(0, 10_000_000), "Min disk per GPU (GB)", WHERE, reason="disk")
    node_id: int | None = spec_field(
        Count(1, 2_147_483_647),
        "Node (booked from an offer)",
        WHERE,
        key="node",
        reason="pinned_node",
        late=True,
        doc="A node id from offer search: the job takes that node, or the booking says why not (409) and "
        "lists the next offers at the same or a lower price",
        hint="Set by the Book link in search: the job runs on that node or not at all.",
    )


@dataclass(frozen=True)
class Terms:
    """How the job runs and pays: mode, price limit (micro-dollars per GPU-hour), start window, duration."""

    mode: str = spec_field(Choice(MODE_CHOICES, initial=JobMode.ON_DEMAND.value), "Mode", TERMS)
    placement: str = spec_field(
        Choice(tuple(Placement.choices), initial=Placement.CHEAPEST.value),
        "Placement preference",
        TERMS,
        doc="Among the offers that fit, never above max_price: cheapest (default), perf_per_dollar or reliable",
        late=True,
        hint="On-demand and reserved jobs: which fitting offer to take; never above your max price.",
    )
    max_price_micros: int | None = spec_field(
        Money(),
        "Max price $/GPU-hour",
        TERMS,
        key="max_price",
        doc='Dollars per GPU-hour (on_demand and reserved), e.g. "2.50"',
        hint="On-demand and reserved jobs never pay more.",
    )
    bid_micros: int | None = spec_field(
        Money(), "Bid $/GPU-hour", TERMS, key="bid", doc="Dollars per GPU-hour (interruptible)"
    )
    earliest_start: datetime | None = spec_field(When(), "Earliest start (UTC)", TERMS, doc="Reserved: window start")
    latest_start: datetime | None = spec_field(When(), "Latest start (UTC)", TERMS, doc="Reserved: window end")
    duration_seconds: int | None = spec_field(
        Hours(),
        "Duration (hours)",
        TERMS,
        key="duration_hours",
        need=Need.BOOKING,
        doc="Hours, > 0 and <= 720 (decimal)",
    )

    @property
    def price_limit_micros(self) -> int | None:
        """What the job pays at most per GPU-hour: its bid when interruptible, else its max price."""
        return self.bid_micros if self.mode == JobMode.INTERRUPTIBLE else self.max_price_micros


@dataclass(frozen=True)
class Workload:
    """What runs: a template, or a container image with its command, environment and exposed ports; SSH access."""

    template: str = spec_field(
        Choice(TEMPLATE_CHOICES),
        "Template",
        GROUPS[3],
        doc="A curated workload (" + ", ".join(t.slug for t in TEMPLATES) + "): fills the image, command, ports, "
        "environment and SSH the booking leaves empty",
        hint="Or leave empty and give your own image.",
        late=True,
    )
    image: str = spec_field(
        Text(300, spaces=False), "Container image", GROUPS[3], need=Need.BOOKING, doc="Container image"
    )
    command: str = spec_field(Text(10_000), "Command", GROUPS[3])
    env: Mapping[str, str] = spec_field(Env(), "Environment", GROUPS[3], hint="KEY=VALUE per line.")
    ports: tuple[int, ...] = spec_field(Ports(), "Ports", GROUPS[3], hint="Comma-separated, e.g. 8888, 6006.")
    ssh: bool = spec_field(
        Flag(initial=False),
        "SSH access",
        GROUPS[3],
        doc="Expose port 22 and put your account's SSH keys in the container (PUBLIC_KEY, authorized_keys)",
        hint="Your account's SSH keys go into the container.",
        late=True,
    )


@dataclass(frozen=True)
class JobSpec:
    """A validated job: requirements, terms, workload and a name (see the module docstring)."""

    requirements: Requirements
    terms: Terms = Terms()
    workload: Workload = Workload()
    name: str = spec_field(Text(200, strip=True), "Name", GROUPS[0])

    @classmethod
    def from_payload(cls, data: Mapping[str, Any], *, booking: bool) -> JobSpec:
        """Validate a booking (`booking=True`) or quote payload (flat keys, JSON or portal values). Raises
        ValidationFailed (400) with every field's errors. A quote reads only the requirements and terms."""
        if not isinstance(data, Mapping):
            raise ValidationFailed("The request body must be a JSON object.")
        errs = Errors()
        fields = FIELDS if booking else QUOTE_FIELDS
        values = {f.key: f.kind.parse(data.get(f.key), name=f.key, errs=errs) for f in fields}
        _apply_template(values, errs)
        _check_catalog(values, errs)
        _check_node(values, errs)
        _check_window(values, errs)
        _check_given(values, errs, booking=booking)
        errs.raise_if_any()
        return _build(values)

    @classmethod
    def from_job(cls, job: Job) -> JobSpec:
        """The spec a Job row was booked with (gpu_models from its many-to-many, sorted)."""
        values = {
            f.key: f.kind.from_column(getattr(job, f.attr))
            if f.column
            else tuple(sorted(m.slug for m in getattr(job, f.attr).all()))
            for f in FIELDS
        }
        return _build(values)

    def value(self, field: Field) -> Any:
        return getattr(self if field.part == "job" else getattr(self, field.part), field.attr)

    def to_model_fields(self) -> dict[str, Any]:
        """Keyword arguments of `Job(...)` (the many-to-many gpu_models set apart). A nameless job is named
        after its image."""
        out = {f.attr: f.kind.to_column(self.value(f)) for f in FIELDS if f.column}
        out["name"] = self.name or self.workload.image.rsplit("/", 1)[-1][:200] or "job"
        return out

    def to_json(self, part: str) -> dict[str, Any]:
        """One part ("requirements", "terms", "workload") as the API writes it, by payload key."""
        return {f.key: f.kind.to_json(self.value(f)) for f in FIELDS if f.part == part}

    def rows(self, *parts: str) -> list[tuple[str, str]]:
        """(label, text) of the set fields of `parts` (all when none named), for the job pages."""
        chosen = [f for f in FIELDS if not parts or f.part in parts]
        return [(f.label, text) for f in chosen if (text := f.kind.text(self.value(f)))]

    def fingerprint(self) -> str:
        """A stable hash of the booking, to tell an idempotent replay from a different request (the same hash
        as before JobSpec existed: attribute names, model values)."""
        data = {
            f.attr: f.kind.to_column(self.value(f))
            for f in FIELDS
            if not (f.late and self.value(f) == f.kind.default())
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def price_limit_micros(self) -> int | None:
        return self.terms.price_limit_micros

    @property
    def max_cost_micros(self) -> int | None:
        """The escrow a booking holds: price limit × GPUs × duration (None without a limit or duration)."""
        limit, seconds = self.terms.price_limit_micros, self.terms.duration_seconds
        if limit is None or seconds is None:
            return None
        return prorate(micros_per_hour=limit, seconds=seconds, gpus=self.requirements.gpu_count)

    def ensure_bookable(self) -> None:
        """Raise ValidationFailed (400) unless the spec has what a booking needs (a quote's spec may not)."""
        errs = Errors()
        _check_given({f.key: self.value(f) for f in FIELDS}, errs, booking=True)
        errs.raise_if_any()


def _bound(cls: type, part: str) -> tuple[Field, ...]:
    return tuple(
        dataclasses.replace(f.metadata["field"], attr=f.name, part=part, key=f.metadata["field"].key or f.name)
        for f in dataclasses.fields(cls)
        if "field" in f.metadata
    )


# API order: requirements and terms (a quote), then the booking's name and workload.
FIELDS: tuple[Field, ...] = (
    *_bound(Requirements, "requirements"),
    *_bound(Terms, "terms"),
    *_bound(JobSpec, "job"),
    *_bound(Workload, "workload"),
)
PAYLOAD_KEYS: tuple[str, ...] = tuple(f.key for f in FIELDS)
QUOTE_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.part in ("requirements", "terms"))
QUOTE_KEYS: tuple[str, ...] = tuple(f.key for f in QUOTE_FIELDS)
FIELD_BY_KEY: Mapping[str, Field] = MappingProxyType({f.key: f for f in FIELDS})
FIELD_BY_REASON: Mapping[str, Field] = MappingProxyType({f.reason: f for f in FIELDS if f.reason})
# The Job columns the matching snapshot reads: every requirement and term kept in a column.
SNAPSHOT_COLUMNS: tuple[str, ...] = tuple(f.attr for f in QUOTE_FIELDS if f.column)


def _build(values: Mapping[str, Any]) -> JobSpec:
    def part(name: str) -> dict[str, Any]:
        return {f.attr: values.get(f.key, f.kind.default()) for f in FIELDS if f.part == name}

    return JobSpec(
        requirements=Requirements(**part("requirements")),
        terms=Terms(**part("terms")),
        workload=Workload(**part("workload")),
        **part("job"),
    )


def _apply_template(values: dict[str, Any], errs: Errors) -> None:
    """Fill each workload field the booking left empty from the template's workload (parsed by the field's own
    kind); the environment is merged, the booking's variables winning."""
    template = TEMPLATE_BY_SLUG.get(values.get("template") or "")
    if template is None:
        return
    for f in FIELDS:
        if f.part != "workload" or f.key not in template.workload:
            continue
        given = f.kind.parse(template.workload[f.key], name=f.key, errs=errs)
        if isinstance(f.kind, Env):
            values[f.key] = MappingProxyType({**given, **(values.get(f.key) or {})})
        elif values.get(f.key) in (None, "", (), False):
            values[f.key] = given


def _check_catalog(values: dict[str, Any], errs: Errors) -> None:
    slugs = values.get("gpu_models") or ()
    if not slugs:
        return
    known = set(GPUModel.objects.filter(slug__in=slugs).values_list("slug", flat=True))
    unknown = [slug for slug in slugs if slug not in known]
    if unknown:
        catalog = ", ".join(GPUModel.objects.order_by("slug").values_list("slug", flat=True)[:200])
        errs.add("gpu_models", f"Unknown GPU model slug(s) {', '.join(unknown)}; the catalog has: {catalog}.")


def _check_node(values: dict[str, Any], errs: Errors) -> None:
    node_id = values.get("node")
    if node_id is not None and not Node.objects.filter(pk=node_id, listed=True).exists():
        errs.add("node", f"No listed node has id {node_id}; pick one from offer search.")


def _check_window(values: dict[str, Any], errs: Errors) -> None:
    earliest, latest = values.get("earliest_start"), values.get("latest_start")
    if values.get("mode") != JobMode.RESERVED:
        if earliest is not None or latest is not None:
            errs.add("earliest_start", "Only reserved jobs take a start window.")
        return
    if earliest and latest and earliest >= latest:
        errs.add("latest_start", "Must be after earliest_start.")
    now = timezone.now()
    if latest and latest <= now:
        errs.add("latest_start", "Must be in the future.")
    # The booking horizon: a window further ahead (year 9999 once stopped every match round) is refused.
    days = int(settings.RIGSHIFT_BOOKING_HORIZON_DAYS)
    horizon = now + timedelta(days=days)
    for key, when in (("earliest_start", earliest), ("latest_start", latest)):
        if when is not None and key not in errs.errors and not now - timedelta(days=days) <= when <= horizon:
            errs.add(
                key,
                f"Must be within {days} days of now (up to {horizon:%Y-%m-%d}); a booking further ahead is refused.",
            )


def _check_given(values: dict[str, Any], errs: Errors, *, booking: bool) -> None:
    """Required fields, the mode's price limit and a reserved job's window (the last two for bookings)."""
    for f in FIELDS:
        needed = f.need is Need.ALWAYS or (booking and f.need is Need.BOOKING)
        if needed and values.get(f.key) in (None, "") and f.key not in errs.errors:
            errs.add(f.key, "This field is required.")
    if not booking:
        return
    mode = values.get("mode")
    if mode == JobMode.INTERRUPTIBLE and values.get("bid") is None and "bid" not in errs.errors:
        errs.add("bid", "An interruptible job needs a bid (dollars per GPU-hour).")
    if mode != JobMode.INTERRUPTIBLE and values.get("max_price") is None and "max_price" not in errs.errors:
        errs.add("max_price", f"A {mode} job needs a max_price (dollars per GPU-hour).")
    if mode == JobMode.RESERVED:
        for key in ("earliest_start", "latest_start"):
            if values.get(key) is None and key not in errs.errors:
                errs.add(key, "A reserved job needs a start window: earliest_start and latest_start.")


__all__ = ["EMPTY_ENV", "FIELDS", "GROUPS", "PAYLOAD_KEYS", "QUOTE_FIELDS", "QUOTE_KEYS", "Field", "JobSpec", "Need"]
