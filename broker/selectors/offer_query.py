"""The offer search query language: space-separated `field op value` clauses.

    gpu_ram>=24 num_gpus>=2 reliability>0.98 region in [eu,us] verified==true

Operators: `< <= == != >= > in notin`; lists are `[a,b]` (spaces inside brackets are allowed).
`field>=24` without spaces works too. A bad clause raises OfferQueryError (400) naming the clause
and what is allowed. The parser is pure (no ORM); broker.selectors.offers turns clauses into filters.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from common.errors import ValidationFailed
from marketplace.models import TIER_RANK, Region, Tier

MAX_QUERY_LENGTH = 2000
MAX_CLAUSES = 40
MAX_LIST_ITEMS = 50

OPERATORS = ("<=", ">=", "==", "!=", "<", ">", "notin", "in")
COMPARISONS = ("<", "<=", "==", "!=", ">=", ">")
LIST_OPS = ("in", "notin")


class Kind(Enum):
    NUMBER = "number"
    BOOL = "bool"
    TEXT = "text"
    TIER = "tier"
    REGION = "region"
    COUNTRY = "country"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    help: str
    integer: bool = False
    money: bool = False  # dollars per GPU-hour


FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in [
        FieldSpec("gpu_name", Kind.TEXT, 'a GPU name or slug, e.g. "RTX 4090" or rtx-4090'),
        FieldSpec("num_gpus", Kind.NUMBER, "free GPUs on the node now", integer=True),
        FieldSpec("gpu_ram", Kind.NUMBER, "GPU memory in GB"),
        FieldSpec("compute_cap", Kind.NUMBER, "CUDA compute capability, e.g. 8.9"),
        FieldSpec("tier", Kind.TIER, "suitability tier: " + ", ".join(t.value for t in Tier)),
        FieldSpec("region", Kind.REGION, "region: " + ", ".join(r.value for r in Region)),
        FieldSpec("country", Kind.COUNTRY, "ISO 3166-1 alpha-2 country code, e.g. DE"),
        FieldSpec("reliability", Kind.NUMBER, "uptime over 30 days, 0 to 1"),
        FieldSpec("verified", Kind.BOOL, "true or false"),
        FieldSpec("price", Kind.NUMBER, "on-demand price per GPU-hour in dollars", money=True),
        FieldSpec("min_bid", Kind.NUMBER, "minimum interruptible bid per GPU-hour in dollars", money=True),
        FieldSpec("dlperf", Kind.NUMBER, "measured benchmark (TFLOPS)"),
        FieldSpec("dlperf_per_dollar", Kind.NUMBER, "measured TFLOPS per dollar per GPU-hour"),
        FieldSpec("inet_down", Kind.NUMBER, "download bandwidth in Mbit/s"),
        FieldSpec("inet_up", Kind.NUMBER, "upload bandwidth in Mbit/s"),
        FieldSpec("cpu_cores", Kind.NUMBER, "CPU cores free on the node (not held by leases)", integer=True),
        FieldSpec("ram", Kind.NUMBER, "system RAM free in GB"),
        FieldSpec("disk", Kind.NUMBER, "disk free in GB"),
    ]
}

ALLOWED_OPS: dict[Kind, tuple[str, ...]] = {
    Kind.NUMBER: COMPARISONS + LIST_OPS,
    Kind.TIER: COMPARISONS + LIST_OPS,
    Kind.BOOL: ("==", "!="),
    Kind.TEXT: ("==", "!=", *LIST_OPS),
    Kind.REGION: ("==", "!=", *LIST_OPS),
    Kind.COUNTRY: ("==", "!=", *LIST_OPS),
}

# Largest magnitude accepted for numbers, so database parameters never overflow.
MAX_NUMBER = Decimal("1e12")


class OfferQueryError(ValidationFailed):
    code = "bad_query"


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    value: Any  # Decimal, bool, str, or a tuple of those for in/notin
    text: str  # the clause as written, for messages


_CLAUSE_RE = re.compile(
    r"""
    \s*(?P<field>[A-Za-z_][A-Za-z0-9_]*)      # field
    \s*(?P<op>[<>=!~]+|\bnotin\b|\bin\b|[^\sA-Za-z0-9_\[\]"',.+\-]+)?  # operator (or junk, reported)
    \s*(?P<value>\[[^\]]*\]?|"[^"]*"?|'[^']*'?|[^\s\[]*)   # value: a list, a quoted string, or a word
    """,
    re.VERBOSE,
)


def _fields_help() -> str:
    return ", ".join(FIELDS)


def _tokens(q: str) -> list[tuple[str, str, str]]:
    """Split the query into (field, op, raw value) triples; raise on anything else."""
    out: list[tuple[str, str, str]] = []
    pos = 0
    n = len(q)
    while pos < n:
        if q[pos].isspace():
            pos += 1
            continue
        m = _CLAUSE_RE.match(q, pos)
        if m is None or m.end() == pos or not m.group("field"):
            word = q[pos:].split(None, 1)[0]
            raise OfferQueryError(
                f"Cannot read clause {word!r}: write `field op value`, e.g. `gpu_ram>=24`. Fields: {_fields_help()}.",
                details={"clause": word},
            )
        out.append((m.group("field"), m.group("op") or "", m.group("value") or ""))
        pos = m.end()
        if len(out) > MAX_CLAUSES:
            raise OfferQueryError(f"Too many clauses: at most {MAX_CLAUSES}.")
    return out


def _strip_quotes(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def _bad_value(text: str, spec: FieldSpec, got: str) -> OfferQueryError:
    return OfferQueryError(
        f"Bad value {got!r} in clause `{text}`: {spec.name} takes {spec.help}.",
        details={"clause": text, "field": spec.name},
    )


def _scalar(spec: FieldSpec, raw: str, text: str) -> Any:  # noqa: C901 — to split into named steps
    raw = _strip_quotes(raw.strip())
    if raw == "":
        raise _bad_value(text, spec, raw)
    if spec.kind is Kind.NUMBER:
        try:
            value = Decimal(raw)
        except (InvalidOperation, ValueError):
            raise _bad_value(text, spec, raw) from None
        if not value.is_finite() or abs(value) > MAX_NUMBER:
            raise _bad_value(text, spec, raw)
        return value
    if spec.kind is Kind.BOOL:
        lowered = raw.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise _bad_value(text, spec, raw)
    if spec.kind is Kind.TIER:
        lowered = raw.lower().replace("-", "_")
        if lowered not in {t.value for t in Tier}:
            raise _bad_value(text, spec, raw)
        return lowered
    if spec.kind is Kind.REGION:
        lowered = raw.lower()
        if lowered not in {r.value for r in Region}:
            raise _bad_value(text, spec, raw)
        return lowered
    if spec.kind is Kind.COUNTRY:
        if not re.fullmatch(r"[A-Za-z]{2}", raw):
            raise _bad_value(text, spec, raw)
        return raw.upper()
    if len(raw) > 80 or "\x00" in raw:
        raise _bad_value(text, spec, raw)
    return raw


def parse_offer_query(*, q: str) -> list[Clause]:  # noqa: C901 — to split into named steps
    """Parse `q` into clauses; raise OfferQueryError naming the bad clause and what is allowed."""
    if not isinstance(q, str):
        raise OfferQueryError("The query must be text.")
    if len(q) > MAX_QUERY_LENGTH:
        raise OfferQueryError(f"The query is too long: at most {MAX_QUERY_LENGTH} characters.")
    if "\x00" in q:
        raise OfferQueryError("The query contains a NUL character.")
    clauses: list[Clause] = []
    for field, op, raw in _tokens(q):
        text = f"{field} {op} {raw}".strip() if op in LIST_OPS else f"{field}{op}{raw}"
        spec = FIELDS.get(field.lower())
        if spec is None:
            raise OfferQueryError(
                f"Unknown field {field!r} in clause `{text}`. Fields: {_fields_help()}.",
                details={"clause": text, "allowed_fields": list(FIELDS)},
            )
        if op == "=":
            op = "=="
        allowed = ALLOWED_OPS[spec.kind]
        if not op:
            raise OfferQueryError(
                f"Missing operator in clause `{text}`: {spec.name} takes {' '.join(allowed)}.",
                details={"clause": text, "allowed_operators": list(allowed)},
            )
        if op not in allowed:
            raise OfferQueryError(
                f"Operator {op!r} is not allowed in clause `{text}`: {spec.name} takes {' '.join(allowed)}.",
                details={"clause": text, "allowed_operators": list(allowed)},
            )
        value: Any
        if op in LIST_OPS:
            if not (raw.startswith("[") and raw.endswith("]") and len(raw) >= 2):
                raise OfferQueryError(
                    f"Clause `{text}` needs a list after {op!r}, e.g. `{spec.name} {op} [a,b]`.",
                    details={"clause": text},
                )
            items = [item.strip() for item in raw[1:-1].split(",") if item.strip()]
            if not items:
                raise OfferQueryError(f"Clause `{text}` has an empty list.", details={"clause": text})
            if len(items) > MAX_LIST_ITEMS:
                raise OfferQueryError(
                    f"Clause `{text}` lists too many values: at most {MAX_LIST_ITEMS}.", details={"clause": text}
                )
            value = tuple(_scalar(spec, item, text) for item in items)
        else:
            if raw.startswith("["):
                raise OfferQueryError(
                    f"Clause `{text}` has a list, which only `in` and `notin` take.", details={"clause": text}
                )
            value = _scalar(spec, raw, text)
        clauses.append(Clause(field=spec.name, op=op, value=value, text=text))
    return clauses


def tier_rank(value: str) -> int:
    return TIER_RANK[Tier(value)]


ORDER_FIELDS = tuple(FIELDS)


def parse_offer_order(*, order: str | None) -> tuple[str, bool]:
    """`price` or `-price` → (field, descending). Default: price ascending."""
    if order is None or order.strip() == "":
        return "price", False
    text = order.strip()
    descending = text.startswith("-")
    name = text.lstrip("-+").lower()
    if name not in FIELDS:
        raise OfferQueryError(
            f"Unknown order field {text!r}. Order by one of: {_fields_help()} (prefix - for descending).",
            details={"order": text, "allowed_fields": list(FIELDS)},
        )
    return name, descending
