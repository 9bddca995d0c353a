"""Fleet assessment: which of a provider's GPUs qualify for AI work, what they would earn, and what upgrading costs.

Input is a list of ``(model name as written, count)`` lines, from a CSV upload (``parse_fleet_csv``: comma,
semicolon or tab separated, header optional, in several languages), a pasted
text, or JSON. ``fleet_assess`` matches names forgivingly (services/gpu_names.py), tiers each line from the
catalog, prices qualifying GPUs at current marketplace prices and stores the report. Everything is validated and
computed before anything is written; the rows are written in one transaction, so bad input saves nothing.

Earnings: the one earnings model of services/earnings.py (per GPU, per month, the provider's share)::

    price per GPU-hour × 730 h × utilisation × (1 − platform fee rate − reserve rate)

where the price is the median on-demand ask of listed nodes of that model (selectors/pricing.py) or, with no
listings, the catalog reference price. The fleet's own cards are counted at the assessment's utilisation (the
provider's what-if). Unsuitable cards earn nothing. Earnings are before electricity and hosting. Unmatched names
are reported back and counted as GPUs that do not qualify (until the name is corrected).
Mining ASICs (services/gpu_names.is_mining_asic) are reported as "not a GPU" and counted nowhere. Bad input is
reported all at once: every malformed line, not only the first.

Upgrade path: each option is quoted by the registered upgrade quoter (financing's underwriting on the provider's
real inputs, services/earnings.upgrade_quote) for one application's worth of GPUs (at most the per-application
limit; a larger farm is financed in several applications): the option's monthly earnings per GPU and its payback
are the quote's (projected at the market utilisation underwriting uses), so the payback shown is the expected
payoff the same application is offered — or the option carries the reasons there would be no offer.
"""

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction

from common.errors import PayloadTooLarge, ValidationFailed
from common.money import MICROS, from_micros
from marketplace.catalog_data import UPGRADE_OPTIONS
from marketplace.models import FleetAssessment, FleetAssessmentLine, GPUModel, Provider, Tier
from marketplace.selectors.pricing import ModelPrice, gpu_model_prices
from marketplace.services.earnings import (
    HOURS_PER_MONTH,
    UpgradeQuote,
    gpu_monthly_share_micros,
    provider_share_fraction,
    upgrade_quote,
)
from marketplace.services.gpu_names import is_mining_asic, match_slug

MAX_LINES = 5000
MAX_COUNT_PER_LINE = 100_000
MAX_NAME_LENGTH = 200
DEFAULT_UTILISATION = Decimal("0.6")
# Multipart framing (boundaries, headers, other fields) allowed around a file of the maximum size.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")
# Header words, also as spreadsheet users elsewhere in Europe write them (German, French, Spanish, Dutch, Polish).
HEADER_MODEL_WORDS = {
    "model", "gpu", "gpu model", "gpu_model", "card", "name", "type", "modell", "grafikkarte", "karte", "typ",
    "modèle", "modele", "carte", "modelo", "tarjeta", "kaart", "karta",
}  # fmt: skip
HEADER_COUNT_WORDS = {
    "count", "qty", "quantity", "gpus", "number", "units", "amount", "pcs", "pieces", "anzahl", "menge", "stück",
    "stk", "nombre", "quantité", "quantite", "cantidad", "unidades", "aantal", "ilość", "ilosc", "sztuk",
}  # fmt: skip


def max_upload_bytes() -> int:
    return int(settings.RIGSHIFT_MAX_UPLOAD_BYTES)


def upload_size_check(*, size: int | None) -> None:
    """Refuse an upload larger than settings.RIGSHIFT_MAX_UPLOAD_BYTES (call it before reading the body)."""
    limit = max_upload_bytes()
    if size is not None and size > limit:
        raise PayloadTooLarge(
            f"The upload is {size:,} bytes; the limit is {limit:,} bytes. A fleet CSV has one short line per model."
        )


def request_body_size_check(*, content_length: str | None) -> None:
    """Refuse a request whose declared body exceeds the upload limit plus multipart framing, before it is parsed.

    Django reads no more than the declared Content-Length, so checking it first bounds what is ever read.
    """
    text = str(content_length or "0").strip()
    declared = int(text) if text.isdigit() else 0
    if declared > max_upload_bytes() + MULTIPART_OVERHEAD_BYTES:
        upload_size_check(size=declared)


EXPECTED = "expected a model and a count, e.g. RTX 3090,12"
MAX_REPORTED_ERRORS = 20
_THOUSANDS_DOT = re.compile(r"\d{1,3}(?:\.\d{3})+")  # "1.200" as Europeans write 1,200
_SEP_HINT = re.compile(r"sep=(.)", re.IGNORECASE)  # spreadsheet programs' "sep=;" first line
DELIMITERS = (",", ";", "\t")


def _count_from(text: str, *, line_no: int) -> int:
    cleaned = text.strip().replace(",", "").replace("_", "").replace(" ", "").replace("\u00a0", "")
    if _THOUSANDS_DOT.fullmatch(cleaned):
        cleaned = cleaned.replace(".", "")
    if not cleaned:
        raise ValidationFailed(f"Line {line_no}: the count is missing; {EXPECTED}.")
    if not _WHOLE_NUMBER.fullmatch(cleaned):
        shown = text.strip()[:20]
        raise ValidationFailed(f"Line {line_no}: count {shown!r} is not a whole number.")
    if len(cleaned.lstrip("+-").lstrip("0")) > 9:
        raise ValidationFailed(f"Line {line_no}: the count is above the limit of {MAX_COUNT_PER_LINE:,} GPUs per line.")
    return int(cleaned)


def _line_check(*, model: str, count: int, line_no: int) -> tuple[str, int]:
    name = " ".join(model.split())
    if not name:
        raise ValidationFailed(f"Line {line_no}: the model name is empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"Line {line_no}: the model name is longer than {MAX_NAME_LENGTH} characters.")
    if count < 1:
        raise ValidationFailed(f"Line {line_no}: count must be at least 1 (got {count}).")
    if count > MAX_COUNT_PER_LINE:
        raise ValidationFailed(
            f"Line {line_no}: count {count:,} is above the limit of {MAX_COUNT_PER_LINE:,} GPUs per line."
        )
    return name, count


def errors_raise(errors: list[str]) -> None:
    """Raise one ValidationFailed naming every bad line (the first MAX_REPORTED_ERRORS in the message)."""
    if not errors:
        return
    if len(errors) == 1:
        raise ValidationFailed(errors[0], details={"lines": errors})
    shown = " ".join(errors[:MAX_REPORTED_ERRORS])
    more = f" …and {len(errors) - MAX_REPORTED_ERRORS} more." if len(errors) > MAX_REPORTED_ERRORS else ""
    raise ValidationFailed(f"{len(errors)} lines need fixing: {shown}{more}", details={"lines": errors})


def _decode(data: bytes) -> str:
    upload_size_check(size=len(data))
    if b"\x00" in data:
        raise ValidationFailed(f"The file is binary, not a CSV text file ({EXPECTED}).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(f"The file is not UTF-8 text; save it as a UTF-8 CSV ({EXPECTED}).") from None


def _rows(lines: list[str], delimiter: str) -> list[tuple[int, list[str]]]:
    """(line number, cells without trailing empties) for each non-blank row."""
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter, skipinitialspace=True)
    for line_no, row in enumerate(reader, start=1):
        cells = [cell.strip() for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            rows.append((line_no, cells))
    return rows


def _split(text: str) -> list[tuple[int, list[str]]]:
    """Rows of the file with its separator: a "sep=;" hint, else whichever of , ; tab gives most two-cell rows."""
    physical = text.splitlines()
    first = next((i for i, line in enumerate(physical) if line.strip()), None)
    if first is None:
        raise ValidationFailed(f"The file is empty: {EXPECTED}, one line per GPU model.")
    hint = _SEP_HINT.fullmatch(physical[first].strip())
    if hint:
        physical[first] = ""
        return _rows(physical, hint.group(1))
    try:
        candidates = [_rows(physical, delimiter) for delimiter in DELIMITERS]
    except csv.Error as exc:
        raise ValidationFailed(f"The CSV is malformed: {exc}.") from None
    return max(candidates, key=lambda rows: sum(len(cells) == 2 for _, cells in rows))  # first wins a tie


def _is_header(cells: list[str]) -> bool:
    first = cells[0].lower()
    second = cells[1].lower() if len(cells) > 1 else ""
    return (first in HEADER_MODEL_WORDS and (not second or second in HEADER_COUNT_WORDS)) or (
        len(cells) == 2 and second in HEADER_COUNT_WORDS
    )


def _row_line(cells: list[str], line_no: int) -> tuple[str, int]:
    if len(cells) < 2:
        raise ValidationFailed(f"Line {line_no}: the count is missing; {EXPECTED}.")
    if len(cells) > 2:
        raise ValidationFailed(
            f"Line {line_no}: expected two columns (model and count), found {len(cells)}; "
            "quote a model name that contains the separator."
        )
    return _line_check(model=cells[0], count=_count_from(cells[1], line_no=line_no), line_no=line_no)


def parse_fleet_csv(*, data: bytes) -> list[tuple[str, int]]:
    """Parse model-and-count lines (header optional; BOM, blank lines, whitespace; `,` `;` or tab separators).

    Raises PayloadTooLarge above the upload limit, and one ValidationFailed naming every malformed line.
    """
    rows = _split(_decode(data))
    if rows and _is_header(rows[0][1]):
        rows = rows[1:]
    if len(rows) > MAX_LINES:
        raise ValidationFailed(f"The fleet has more than {MAX_LINES:,} lines; merge lines of the same model.")
    lines: list[tuple[str, int]] = []
    errors: list[str] = []
    for line_no, cells in rows:
        try:
            lines.append(_row_line(cells, line_no))
        except ValidationFailed as exc:
            errors.append(exc.message)
    errors_raise(errors)
    if not lines:
        raise ValidationFailed(f"The file has no fleet lines: {EXPECTED}, one line per GPU model.")
    return lines


def parse_fleet_text(*, text: str) -> list[tuple[str, int]]:
    """Pasted text in the same format as the CSV (a model and a count per line)."""
    return parse_fleet_csv(data=text.encode("utf-8"))


def _utilisation_check(utilisation: Decimal | str | float) -> Decimal:
    try:
        value = Decimal(str(utilisation))
    except InvalidOperation:
        raise ValidationFailed(f"Utilisation {utilisation!r} is not a number between 0 and 1.") from None
    if not value.is_finite() or value < 0 or value > 1:
        raise ValidationFailed(f"Utilisation must be between 0 and 1 (got {utilisation}).")
    return value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def _monthly_net_micros(*, price_micros: int, utilisation: Decimal) -> int:
    return gpu_monthly_share_micros(
        price_micros=price_micros, utilisation=utilisation, share_fraction=provider_share_fraction()
    )


def _usd(micros: int) -> str:
    """A dollar amount with two places, as a decimal string."""
    return str((Decimal(micros) / MICROS).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _hourly(micros: int) -> str:
    return str(from_micros(micros=micros))


@dataclass
class _Line:
    position: int
    raw: str
    count: int
    model: GPUModel | None
    asic: bool = False  # a mining ASIC: reported as not a GPU, counted nowhere


def _not_gpu(line: _Line) -> dict[str, Any]:
    return {
        "position": line.position,
        "raw_model": line.raw,
        "count": line.count,
        "message": f"{line.raw!r} is a crypto-mining ASIC, not a GPU: it can only compute one hash function, so it "
        "cannot run AI work. It is not counted among your GPUs.",
    }


def _financing(quote: UpgradeQuote | None, replaces: int) -> dict[str, Any]:
    """What the upgrade quote says, for the report (plain JSON)."""
    if quote is None:
        return {"available": False, "reasons": ["Financing is not available on this installation."]}
    return {
        "available": True,
        "offered": quote.offered,
        "count": quote.count,
        "applications": -(-replaces // quote.count) if quote.count else 0,
        "offered_count": quote.offered_count,
        "principal": _usd(quote.principal_micros),
        "fee": _usd(quote.fee_micros),
        "withhold_rate": str(Decimal(quote.withhold_bps) / 10_000),
        "payoff_months": str(quote.payoff_months) if quote.payoff_months is not None else None,
        "utilisation": f"{float(quote.utilisation):.3f}",
        "reasons": list(quote.reasons),
    }


def _upgrade_option(
    *, option: Any, target: GPUModel, price: ModelPrice, replaces: int, fleet_monthly: int, ctx: dict[str, Any]
) -> dict[str, Any]:
    unit = option.unit_cost_usd * MICROS
    quote = (
        upgrade_quote(provider=ctx["provider"], gpu_model=target, count=replaces, unit_cost_micros=unit)
        if ctx["provider"] is not None
        else None
    )
    per_gpu = (
        quote.monthly_share_per_gpu_micros
        if quote is not None
        else _monthly_net_micros(price_micros=price.micros_per_gpu_hour, utilisation=ctx["utilisation"])
    )
    return {
        "slug": target.slug,
        "name": target.name,
        "tier": target.tier,
        "replaces_gpus": replaces,
        "unit_cost": _usd(unit),
        "cost_basis": option.cost_basis,
        "total_cost": _usd(unit * replaces),
        "price_per_gpu_hour": _hourly(price.micros_per_gpu_hour),
        "price_source": price.source,
        "monthly_earnings_per_gpu": _usd(per_gpu),
        "monthly_earnings_total": _usd(per_gpu * replaces),
        "fleet_monthly_earnings_after": _usd(fleet_monthly + per_gpu * replaces),
        "payback_months": str(quote.payoff_months) if quote is not None and quote.offered else None,
        "financing": _financing(quote, replaces),
    }


@dataclass
class _FleetTally:
    """The fleet's lines counted: per line, per model, per tier, and the fleet's monthly earnings."""

    tiers: dict[str, int] = field(default_factory=lambda: {tier.value: 0 for tier in Tier})
    lines: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    not_gpus: list[dict[str, Any]] = field(default_factory=list)
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    total_gpus: int = 0
    qualifying_gpus: int = 0
    unsuitable_gpus: int = 0
    unmatched_gpus: int = 0
    fleet_monthly: int = 0


def _tally_unmatched(tally: _FleetTally, line: _Line) -> None:
    tally.unmatched_gpus += line.count
    tally.unmatched.append(
        {
            "position": line.position,
            "raw_model": line.raw,
            "count": line.count,
            "message": f"Unknown GPU model {line.raw!r}: no catalog model matches this name. Check the "
            "spelling (for example 'RTX 3090' or 'RX 580 8GB'); these GPUs count as not qualifying.",
        }
    )


def _tally_matched(
    tally: _FleetTally, line: _Line, *, model: GPUModel, price: ModelPrice, utilisation: Decimal
) -> None:
    tally.tiers[model.tier] += line.count
    qualifies = model.tier != Tier.UNSUITABLE
    per_gpu = _monthly_net_micros(price_micros=price.micros_per_gpu_hour, utilisation=utilisation) if qualifies else 0
    if qualifies:
        tally.qualifying_gpus += line.count
    else:
        tally.unsuitable_gpus += line.count
    tally.fleet_monthly += per_gpu * line.count
    tally.lines.append(
        {
            "position": line.position,
            "raw_model": line.raw,
            "count": line.count,
            "slug": model.slug,
            "name": model.name,
            "vram_gb": str(model.vram_gb.normalize()),
            "tier": model.tier,
            "reason": model.tier_reason,
            "qualifies": qualifies,
            "price_per_gpu_hour": _hourly(price.micros_per_gpu_hour if qualifies else 0),
            "price_source": price.source if qualifies else "none",
            "monthly_earnings_per_gpu": _usd(per_gpu),
            "monthly_earnings_total": _usd(per_gpu * line.count),
        }
    )
    entry = tally.per_model.setdefault(
        model.slug,
        {"slug": model.slug, "name": model.name, "tier": model.tier, "count": 0, "_monthly": 0},
    )
    entry["count"] += line.count
    entry["_monthly"] += per_gpu * line.count


def _tally(lines: list[_Line], *, prices: dict[int, ModelPrice], utilisation: Decimal) -> _FleetTally:
    tally = _FleetTally()
    for line in lines:
        if line.asic:
            tally.not_gpus.append(_not_gpu(line))
            continue
        tally.total_gpus += line.count
        if line.model is None:
            _tally_unmatched(tally, line)
        else:
            _tally_matched(tally, line, model=line.model, price=prices[line.model.pk], utilisation=utilisation)
    tally.tiers["unmatched"] = tally.unmatched_gpus
    return tally


def _models_summary(per_model: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Models by monthly earnings (then GPUs, slug), each with its total."""
    summary = []
    for entry in sorted(per_model.values(), key=lambda e: (-e["_monthly"], -e["count"], e["slug"])):
        monthly = entry.pop("_monthly")
        entry["monthly_earnings_total"] = _usd(monthly)
        summary.append(entry)
    return summary


def _upgrade_options(
    tally: _FleetTally, *, upgrade_models: dict[str, GPUModel], prices: dict[int, ModelPrice], ctx: dict[str, Any]
) -> list[dict[str, Any]]:
    """One option per upgrade target in the catalog, replacing the unsuitable cards one for one (none: none)."""
    if not tally.unsuitable_gpus:
        return []
    return [
        _upgrade_option(
            option=option,
            target=target,
            price=prices[target.pk],
            replaces=tally.unsuitable_gpus,
            fleet_monthly=tally.fleet_monthly,
            ctx=ctx,
        )
        for option in UPGRADE_OPTIONS
        if (target := upgrade_models.get(option.slug)) is not None
    ]


def _assumptions(*, utilisation: Decimal, fee_rate: Decimal) -> list[str]:
    return [
        f"{HOURS_PER_MONTH} hours per month at {utilisation * 100:.1f}% utilisation for the cards you have.",
        f"Net of the {fee_rate * 100:.1f}% platform fee and the reserve (your share of each settlement); "
        "before electricity and hosting costs.",
        "Upgrade options: earnings and payback are the financing quote for one application (at most the "
        "per-application limit of GPUs), projected at the market utilisation underwriting uses; the payback is "
        "the advance's expected payoff (principal + fee repaid by the withhold rate), or the reasons there is "
        "no offer.",
        "Prices: median on-demand ask of listed RigShift nodes of the model, else the catalog reference price.",
        "Unsuitable cards earn nothing; unmatched names count as GPUs that do not qualify.",
        "Mining ASICs (Antminer, Whatsminer, AvalonMiner, …) are not GPUs: listed apart, counted nowhere.",
    ]


def _build_report(
    *,
    lines: list[_Line],
    utilisation: Decimal,
    fee_rate: Decimal,
    upgrade_models: dict[str, GPUModel],
    provider: Provider | None = None,
) -> dict[str, Any]:
    matched_models = {line.model.pk: line.model for line in lines if line.model is not None}
    all_models = {**matched_models, **{m.pk: m for m in upgrade_models.values()}}
    prices: dict[int, ModelPrice] = gpu_model_prices(gpu_models=all_models.values())
    t = _tally(lines, prices=prices, utilisation=utilisation)
    ctx = {"provider": provider, "utilisation": utilisation}
    share = Decimal(t.qualifying_gpus) / Decimal(t.total_gpus) if t.total_gpus else Decimal(0)
    return {
        "total_gpus": t.total_gpus,
        "qualifying_gpus": t.qualifying_gpus,
        "unsuitable_gpus": t.unsuitable_gpus,
        "unmatched_gpus": t.unmatched_gpus,
        "qualifying_share": float(share.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)),
        "tiers": t.tiers,
        "utilisation": str(utilisation),
        "hours_per_month": HOURS_PER_MONTH,
        "platform_fee_rate": str(fee_rate),
        "lines": t.lines,
        "unmatched": t.unmatched,
        "not_gpus": t.not_gpus,
        "not_gpu_units": sum(item["count"] for item in t.not_gpus),
        "models": _models_summary(t.per_model),
        "earnings": {
            "monthly_total": _usd(t.fleet_monthly),
            "monthly_per_qualifying_gpu": _usd(t.fleet_monthly // t.qualifying_gpus if t.qualifying_gpus else 0),
        },
        "upgrade_path": {
            "replaces_gpus": t.unsuitable_gpus,
            "options": _upgrade_options(t, upgrade_models=upgrade_models, prices=prices, ctx=ctx),
            "note": (
                "Replacing each unsuitable card one for one; costs exclude resale of the old cards, power and hosting."
                if t.unsuitable_gpus
                else "Every matched GPU already qualifies; no upgrade needed."
            ),
        },
        "assumptions": _assumptions(utilisation=utilisation, fee_rate=fee_rate),
    }


def fleet_assess(
    *,
    provider: Provider,
    lines: Sequence[tuple[str, int]],
    utilisation: Decimal | str | float = DEFAULT_UTILISATION,
) -> FleetAssessment:
    """Assess a fleet and store the report; raises ValidationFailed (and saves nothing) on bad input."""
    if not lines:
        raise ValidationFailed(f"The fleet is empty: {EXPECTED}, one line per GPU model.")
    if len(lines) > MAX_LINES:
        raise ValidationFailed(f"The fleet has more than {MAX_LINES:,} lines; merge lines of the same model.")
    util = _utilisation_check(utilisation)
    checked: list[tuple[str, int]] = []
    errors: list[str] = []
    for line_no, (model, count) in enumerate(lines, start=1):
        try:
            if not isinstance(model, str) or isinstance(count, bool) or not isinstance(count, int):
                raise ValidationFailed(f"Line {line_no}: expected a model name and a whole-number count.")
            checked.append(_line_check(model=model, count=count, line_no=line_no))
        except ValidationFailed as exc:
            errors.append(exc.message)
    errors_raise(errors)

    slugs = {name: match_slug(name) for name, _ in checked}
    wanted = {slug for slug in slugs.values() if slug} | {option.slug for option in UPGRADE_OPTIONS}
    by_slug = {model.slug: model for model in GPUModel.objects.filter(slug__in=wanted)}
    parsed = [
        _Line(
            position=i,
            raw=name,
            count=count,
            model=by_slug.get(slugs[name] or ""),
            asic=slugs[name] is None and is_mining_asic(name),
        )
        for i, (name, count) in enumerate(checked, start=1)
    ]
    upgrade_models = {option.slug: by_slug[option.slug] for option in UPGRADE_OPTIONS if option.slug in by_slug}
    fee_rate = Decimal(str(settings.RIGSHIFT_PLATFORM_FEE_RATE))
    report = _build_report(
        lines=parsed, utilisation=util, fee_rate=fee_rate, upgrade_models=upgrade_models, provider=provider
    )

    with transaction.atomic():
        assessment = FleetAssessment.objects.create(
            provider=provider,
            utilisation=util,
            total_gpus=report["total_gpus"],
            qualifying_gpus=report["qualifying_gpus"],
            report=report,
        )
        FleetAssessmentLine.objects.bulk_create(
            FleetAssessmentLine(
                assessment_id=assessment.pk,
                position=line.position,
                raw_model=line.raw,
                count=line.count,
                gpu_model_id=line.model.pk if line.model else None,
            )
            for line in parsed
        )
    return assessment
