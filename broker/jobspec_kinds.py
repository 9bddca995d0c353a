"""The value kinds of the job specification (broker/jobspec.py): how one payload value is checked and converted,
and how it is written back (JSON, page text).

A kind carries its bounds, so the API schema (broker/api/jobs.py) and the portal form (broker/forms.py) render
the same limits the validation enforces. Parsers are lenient about the spelling of a value (a number may come
as a JSON number or a string, a list as a comma-separated string, env/ports as the portal's text) and strict
about its meaning; each failure is a per-field message in `Errors`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.errors import ValidationFailed
from common.money import format_usd, from_micros, to_micros
from common.numbers import NumberError, number_value

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
EMPTY_ENV: Mapping[str, str] = MappingProxyType({})


class Errors:
    """Per-field error messages, raised together as one ValidationFailed (400) with `details`."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.errors.items())
            raise ValidationFailed(summary, details=self.errors)


def absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


@dataclass(frozen=True)
class Kind:
    """How one field's value is parsed, written as JSON and shown as text. `default` when absent."""

    def default(self) -> Any:
        return None

    def parse(self, raw: Any, *, name: str, errs: Errors) -> Any:
        raise NotImplementedError

    def to_json(self, value: Any) -> Any:
        return value

    def to_column(self, value: Any) -> Any:
        """The value as the Job model stores it (lists and dicts, not tuples and read-only mappings)."""
        return value

    def from_column(self, value: Any) -> Any:
        return value

    def text(self, value: Any) -> str:
        return "" if value is None else str(value)


def _decimal(raw: Any, *, name: str, errs: Errors) -> Decimal | None:
    """The one number rule (`common.numbers.number_value`): NaN, Infinity, overflowing exponents refused."""
    try:
        return number_value(raw)
    except NumberError as exc:
        errs.add(name, str(exc))
        return None


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


@dataclass(frozen=True)
class Number(Kind):
    """A decimal in [low, high] with at most `places` decimals (`digits` in all: the database column)."""

    low: Decimal
    high: Decimal
    places: int
    digits: int

    def parse(self, raw: Any, *, name: str, errs: Errors) -> Decimal | None:
        value = None if absent(raw) else _decimal(raw, name=name, errs=errs)
        if value is None:
            return None
        if not self.low <= value <= self.high:
            errs.add(name, f"Must be >= {self.low} and <= {self.high}.")
            return None
        if _places(value) > self.places:
            errs.add(name, f"At most {self.places} decimal place(s).")
            return None
        return value

    def to_json(self, value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    def text(self, value: Decimal | None) -> str:
        return "" if value is None else f"{value:g}"


@dataclass(frozen=True)
class Ratio(Number):
    """A fraction from 0 to 1, kept as a float (reliability)."""

    def parse(self, raw: Any, *, name: str, errs: Errors) -> float | None:  # type: ignore[override]
        value = super().parse(raw, name=name, errs=errs)
        return None if value is None else float(value)

    def to_json(self, value: float | None) -> float | None:  # type: ignore[override]
        return value

    def text(self, value: float | None) -> str:  # type: ignore[override]
        return "" if value is None else f"{value:.1%}"


@dataclass(frozen=True)
class Count(Kind):
    """A whole number in [low, high]."""

    low: int
    high: int

    def parse(self, raw: Any, *, name: str, errs: Errors) -> int | None:
        value = None if absent(raw) else _decimal(raw, name=name, errs=errs)
        if value is None:
            return None
        if not self.low <= value <= self.high:
            errs.add(name, f"Must be >= {self.low} and <= {self.high}.")
            return None
        if value != value.to_integral_value():
            errs.add(name, "Must be a whole number.")
            return None
        return int(value)


@dataclass(frozen=True)
class Money(Kind):
    """Dollars per GPU-hour, > 0 and <= `high`, at most 6 decimals; kept as integer micro-dollars."""

    high: Decimal = Decimal(1000)

    def parse(self, raw: Any, *, name: str, errs: Errors) -> int | None:
        value = None if absent(raw) else _decimal(raw, name=name, errs=errs)
        if value is None:
            return None
        if not Decimal(0) < value <= self.high:
            errs.add(name, f"Must be > 0 and <= {self.high}.")
            return None
        if _places(value) > 6:
            errs.add(name, "At most 6 decimal places.")
            return None
        return to_micros(amount=value)

    def to_json(self, value: int | None) -> str | None:
        return None if value is None else format(from_micros(micros=value), "f")

    def text(self, value: int | None) -> str:
        return "" if value is None else f"{format_usd(micros=value, places=6)}/GPU-hour"


@dataclass(frozen=True)
class Hours(Kind):
    """A duration in hours, > 0 and <= `high` (decimal); kept as whole seconds (rounded up)."""

    high: Decimal = Decimal(720)

    def parse(self, raw: Any, *, name: str, errs: Errors) -> int | None:
        value = None if absent(raw) else _decimal(raw, name=name, errs=errs)
        if value is None:
            return None
        if not Decimal(0) < value <= self.high:
            errs.add(name, f"Must be > 0 and <= {self.high}.")
            return None
        return max(1, math.ceil(value * 3600))

    def to_json(self, value: int | None) -> str | None:
        return None if value is None else format((Decimal(value) / 3600).quantize(Decimal("0.0001")).normalize(), "f")

    def text(self, value: int | None) -> str:
        return "" if value is None else f"{self.to_json(value)} h"


@dataclass(frozen=True)
class Flag(Kind):
    """True or false (also "true"/"1"/"yes"/"on" and their opposites)."""

    initial: bool

    def default(self) -> bool:
        return self.initial

    def parse(self, raw: Any, *, name: str, errs: Errors) -> bool:
        if absent(raw):
            return self.initial
        if isinstance(raw, bool):
            return raw
        word = raw.strip().lower() if isinstance(raw, str) else None
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off"):
            return False
        errs.add(name, "Must be true or false.")
        return self.initial

    def text(self, value: bool) -> str:
        return "yes" if value else "no"


@dataclass(frozen=True)
class Choice(Kind):
    """One of `choices` ((value, label) pairs); `initial` when absent ("" = no requirement).
    `hidden`: accepted, but not offered by the portal form."""

    choices: tuple[tuple[str, str], ...]
    initial: str = ""
    hidden: tuple[str, ...] = ()

    def default(self) -> str:
        return self.initial

    def parse(self, raw: Any, *, name: str, errs: Errors) -> str:
        if not raw or absent(raw):
            return self.initial
        if raw not in {value for value, _ in self.choices}:
            errs.add(name, f"Must be one of: {', '.join(value for value, _ in self.choices)}.")
            return self.initial
        return str(raw)

    def text(self, value: str) -> str:
        return dict(self.choices).get(value, value)


@dataclass(frozen=True)
class Names(Kind):
    """A list of lower-case names (a comma/space separated string too), de-duplicated in order. With
    `choices`, each must be one of them; otherwise each is at most `max_length` characters."""

    choices: tuple[tuple[str, str], ...] = ()
    max_length: int = 40
    max_items: int = 100

    def default(self) -> tuple[str, ...]:
        return ()

    def parse(self, raw: Any, *, name: str, errs: Errors) -> tuple[str, ...]:
        if absent(raw):
            return ()
        if isinstance(raw, str):
            raw = [part for part in re.split(r"[\s,]+", raw) if part]
        if not isinstance(raw, (list, tuple)) or not all(isinstance(item, str) for item in raw):
            errs.add(name, "Must be a list of strings.")
            return ()
        if len(raw) > self.max_items:
            errs.add(name, f"At most {self.max_items} items.")
            return ()
        out = tuple(dict.fromkeys(item.strip().lower() for item in raw if item.strip()))
        allowed = {value for value, _ in self.choices}
        bad = [item for item in out if (item not in allowed if allowed else len(item) > self.max_length)]
        if bad and allowed:
            errs.add(name, f"Unknown value(s) {', '.join(bad)}; allowed: {', '.join(sorted(allowed))}.")
        elif bad:
            errs.add(name, f"Each item is at most {self.max_length} characters.")
        return () if bad else out

    def to_json(self, value: Sequence[str]) -> list[str]:
        return list(value)

    to_column = to_json

    def from_column(self, value: Sequence[str] | None) -> tuple[str, ...]:
        return tuple(value or ())

    def text(self, value: Sequence[str]) -> str:
        return ", ".join(value)


@dataclass(frozen=True)
class Text(Kind):
    """Text of at most `max_length` characters (`spaces=False`: none at all, e.g. an image reference)."""

    max_length: int
    spaces: bool = True
    strip: bool = False

    def default(self) -> str:
        return ""

    def parse(self, raw: Any, *, name: str, errs: Errors) -> str:
        if not raw:
            return ""
        if not isinstance(raw, str) or len(raw) > self.max_length or (not self.spaces and re.search(r"\s", raw)):
            rule = "" if self.spaces else ", no spaces"
            errs.add(name, f"Must be text of at most {self.max_length:,} characters{rule}.")
            return ""
        return raw.strip() if self.strip else raw


@dataclass(frozen=True)
class Env(Kind):
    """Environment variables: an object of strings, or the portal's `KEY=VALUE` lines."""

    max_items: int = 100
    max_value: int = 4096

    def default(self) -> Mapping[str, str]:
        return EMPTY_ENV

    def parse(self, raw: Any, *, name: str, errs: Errors) -> Mapping[str, str]:
        if not raw or absent(raw):
            return EMPTY_ENV
        if isinstance(raw, str):
            raw = self._lines(raw, name=name, errs=errs)
            if raw is None:
                return EMPTY_ENV
        if not isinstance(raw, Mapping) or len(raw) > self.max_items:
            errs.add(name, f"Must be an object of at most {self.max_items} string values.")
            return EMPTY_ENV
        if not all(
            isinstance(k, str) and ENV_KEY.fullmatch(k) and isinstance(v, str) and len(v) <= self.max_value
            for k, v in raw.items()
        ):
            errs.add(
                name,
                f"Keys must be variable names (letters, digits, _) and values strings of at most {self.max_value} "
                "characters.",
            )
            return EMPTY_ENV
        return MappingProxyType(dict(raw))

    @staticmethod
    def _lines(text: str, *, name: str, errs: Errors) -> dict[str, str] | None:
        env: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                errs.add(name, f"Write KEY=VALUE, one per line; got {line.strip()[:60]!r}.")
                return None
            env[key.strip()] = value.strip()
        return env

    def to_json(self, value: Mapping[str, str]) -> dict[str, str]:
        return dict(value)

    to_column = to_json

    def from_column(self, value: Mapping[str, str] | None) -> Mapping[str, str]:
        return MappingProxyType(dict(value or {}))

    def text(self, value: Mapping[str, str]) -> str:
        return "\n".join(f"{k}={v}" for k, v in value.items())


@dataclass(frozen=True)
class Ports(Kind):
    """Port numbers from 1 to 65535 (a list, or comma-separated text), sorted and de-duplicated."""

    max_items: int = 50

    def default(self) -> tuple[int, ...]:
        return ()

    def parse(self, raw: Any, *, name: str, errs: Errors) -> tuple[int, ...]:
        if not raw or absent(raw):
            return ()
        if isinstance(raw, str):
            items = [item for item in re.split(r"[\s,]+", raw) if item]
            bad = next((item for item in items if not item.isdigit() or not 1 <= int(item) <= 65535), None)
            if bad is not None:
                errs.add(name, f"{bad[:20]!r} is not a port number (1–65535).")
                return ()
            raw = [int(item) for item in items]
        if (
            not isinstance(raw, (list, tuple))
            or len(raw) > self.max_items
            or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in raw)
        ):
            errs.add(name, f"Must be a list of at most {self.max_items} port numbers from 1 to 65535.")
            return ()
        return tuple(sorted(set(raw)))

    def to_json(self, value: Sequence[int]) -> list[int]:
        return list(value)

    to_column = to_json

    def from_column(self, value: Sequence[int] | None) -> tuple[int, ...]:
        return tuple(value or ())

    def text(self, value: Sequence[int]) -> str:
        return ", ".join(str(p) for p in value)


@dataclass(frozen=True)
class When(Kind):
    """An ISO 8601 date-time (naive ones are taken in the server's time zone)."""

    def parse(self, raw: Any, *, name: str, errs: Errors) -> datetime | None:
        if absent(raw):
            return None
        value: datetime | None = None
        if isinstance(raw, datetime):
            value = raw
        elif isinstance(raw, str):
            try:
                value = parse_datetime(raw.strip())
            except ValueError:
                value = None
        if value is None:
            errs.add(name, "Must be an ISO 8601 date-time, e.g. 2026-12-01T09:00:00Z.")
            return None
        return timezone.make_aware(value, timezone.get_current_timezone()) if timezone.is_naive(value) else value

    def to_json(self, value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    def text(self, value: datetime | None) -> str:
        return "" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"
