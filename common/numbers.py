"""One money type and one decimal type for every number a person or a program types in.

The API's serializers (`MoneyField`, `DecimalNumberField`), the pages' forms (`MoneyFormField`,
`DecimalFormField`), the job specification's kinds and the offer query language (`q=`) all parse numbers
here, so a value is accepted or refused the same way everywhere, and never reaches decimal arithmetic that
could overflow (`decimal.Overflow` on `1e999999999`) or a conversion that fails (`int(Decimal("Infinity"))`).

Accepted text (`NUMBER_TEXT`): an optional sign, digits with an optional decimal point, an optional
exponent of at most 4 digits; at most `MAX_CHARS` characters. Refused, with a clear message: `NaN`,
`Infinity`, `inf`, exponents of 5 digits or more (`1e999999999`), non-finite JSON numbers, booleans.

Documented ranges (a field may narrow them, never widen):

- **Money**: US dollars, from 0 to `MONEY_MAX` ($1,000,000,000), at most 6 decimal places (the micro-dollar;
  amounts people pay in take 2), kept as integer micro-dollars (`common.money`).
- **Decimal**: from -`DECIMAL_MAX` to `DECIMAL_MAX` (10^12), at most `DECIMAL_PLACES` (12) decimal places.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from django import forms
from rest_framework import serializers

from common.errors import ValidationFailed
from common.money import MICROS, format_usd

MAX_CHARS = 40
NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?")
MONEY_MAX = Decimal(1_000_000_000)
MONEY_MAX_MICROS = int(MONEY_MAX) * MICROS
MONEY_PLACES = 6
DECIMAL_MAX = Decimal(10**12)
DECIMAL_PLACES = 12


class NumberError(ValueError):
    """Why a value is not an accepted number, as a sentence for people."""


def _text(raw: Any) -> Decimal:
    """The raw value as a finite Decimal of sane size, or NumberError (no arithmetic has run yet)."""
    if isinstance(raw, bool) or raw is None:
        raise NumberError("Must be a number.")
    if isinstance(raw, str):
        return _from_string(raw)
    if isinstance(raw, float | int | Decimal):
        return _from_number(raw)
    raise NumberError("Must be a number.")


def _from_number(raw: float | int | Decimal) -> Decimal:
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise NumberError("Must be a finite number (not NaN or Infinity).")
        return Decimal(repr(raw))
    if isinstance(raw, int):
        if abs(raw) > 10**30:
            raise NumberError("Number out of range.")
        return Decimal(raw)
    if not raw.is_finite():
        raise NumberError("Must be a finite number (not NaN or Infinity).")
    if raw and not -40 <= raw.adjusted() <= 30:
        raise NumberError("Number out of range.")
    return raw


def _from_string(raw: str) -> Decimal:
    text = raw.strip()
    if len(text) > MAX_CHARS:
        raise NumberError(f"Must be a number of at most {MAX_CHARS} characters.")
    if NUMBER_TEXT.fullmatch(text):
        return Decimal(text)
    if text.lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
        raise NumberError("Must be a finite number (not NaN or Infinity).")
    if re.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)[eE][+-]?\d+", text):
        raise NumberError("Number out of range (exponent too large).")
    raise NumberError(f"Must be a number, not {text[:20]!r}.")


def number_value(raw: Any) -> Decimal:
    """The raw value as a finite Decimal within ±DECIMAL_MAX, as typed (no rounding); else NumberError."""
    value = _text(raw)
    if abs(value) > DECIMAL_MAX:
        raise NumberError(f"Number out of range (at most {DECIMAL_MAX:,} in size).")
    return value


def decimal_parse(
    raw: Any,
    *,
    low: Decimal = -DECIMAL_MAX,
    high: Decimal = DECIMAL_MAX,
    places: int = DECIMAL_PLACES,
) -> Decimal:
    """A number in [low, high] with at most `places` decimal places, as a Decimal quantized to `places`.

    Raises NumberError with a message for people (the callers turn it into their 400)."""
    low, high, places = max(low, -DECIMAL_MAX), min(high, DECIMAL_MAX), min(places, DECIMAL_PLACES)
    value = _text(raw)
    if not low <= value <= high:
        raise NumberError(f"Must be between {low:f} and {high:f}.")
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    if normal and isinstance(exponent, int) and -exponent > places:
        raise NumberError(f"At most {places} decimal place{'s' if places != 1 else ''}.")
    return value.quantize(Decimal(1).scaleb(-places))


def money_parse(
    raw: Any,
    *,
    places: int = MONEY_PLACES,
    min_micros: int = 0,
    max_micros: int = MONEY_MAX_MICROS,
    positive: bool = False,
) -> int:
    """Dollars → integer micro-dollars: in [min, max] (> 0 with `positive`), at most `places` decimals."""
    max_micros = min(max_micros, MONEY_MAX_MICROS)
    if isinstance(raw, float):
        raise NumberError('Must be a dollar amount as a string such as "50.00", not a floating-point number.')
    try:
        value = decimal_parse(raw, low=Decimal(-MONEY_MAX), high=MONEY_MAX, places=min(places, MONEY_PLACES))
    except NumberError as exc:
        if str(exc).startswith("Must be between"):
            raise NumberError(_money_range(min_micros, max_micros, positive)) from None
        raise
    micros = int(value * MICROS)
    if micros < min_micros or micros > max_micros or (positive and micros <= 0):
        raise NumberError(_money_range(min_micros, max_micros, positive))
    return micros


def _money_range(min_micros: int, max_micros: int, positive: bool) -> str:
    low = "more than $0" if positive and min_micros <= 0 else f"at least {format_usd(micros=min_micros)}"
    return f"Must be {low} and at most {format_usd(micros=max_micros)}."


def field_error(field: str, exc: NumberError) -> ValidationFailed:
    """The API's 400 for one field: `{"detail": "<field>: <why>", "errors": {field: [why]}}`."""
    return ValidationFailed(f"{field}: {exc}", details={field: [str(exc)]})


def money_field_parse(raw: Any, *, field: str, required: bool = True, **rules: Any) -> int | None:
    """`money_parse` for a named input; absent (None or "") is None unless required; else a 400."""
    if raw in (None, "") and not required:
        return None
    try:
        return money_parse(raw, **rules)
    except NumberError as exc:
        raise field_error(field, exc) from None


# --- the API (DRF) ------------------------------------------------------------------------------------------


class MoneyField(serializers.CharField):
    """Dollars as a decimal string ("50.00"; a JSON number is accepted too) → integer micro-dollars."""

    def __init__(
        self,
        *,
        places: int = MONEY_PLACES,
        min_micros: int = 0,
        max_micros: int = MONEY_MAX_MICROS,
        positive: bool = False,
        **kwargs: Any,
    ) -> None:
        self.rules: dict[str, Any] = {
            "places": places,
            "min_micros": min_micros,
            "max_micros": max_micros,
            "positive": positive,
        }
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:  # type: ignore[override]
        try:
            return money_parse(data, **self.rules)
        except NumberError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: Any) -> str:
        return format(Decimal(int(value)) / MICROS, "f")


class DecimalNumberField(serializers.DecimalField):
    """DRF's DecimalField behind `number_value`: NaN, Infinity and overflowing exponents are a 400."""

    def to_internal_value(self, data: Any) -> Decimal:
        if data is not None and data != "":
            try:
                number_value(data)
            except NumberError as exc:
                raise serializers.ValidationError(str(exc)) from None
        result: Decimal = super().to_internal_value(data)
        return result


# --- the pages (Django forms) -------------------------------------------------------------------------------


class MoneyFormField(forms.CharField):
    """A form's dollar amount → integer micro-dollars (`cleaned_data`), with `money_parse`'s rules."""

    def __init__(
        self,
        *,
        places: int = 2,
        min_micros: int = 0,
        max_micros: int = MONEY_MAX_MICROS,
        positive: bool = True,
        **kwargs: Any,
    ) -> None:
        self.rules: dict[str, Any] = {
            "places": places,
            "min_micros": min_micros,
            "max_micros": max_micros,
            "positive": positive,
        }
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return money_parse(text, **self.rules)
        except NumberError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None


class DecimalFormField(forms.DecimalField):
    """Django's DecimalField behind `number_value` (then its own range, digits and places checks)."""

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]
        result: Decimal | None = super().to_python(value)  # "Enter a number." for text that is not one
        if result is None:
            return None
        try:
            number_value(result)
        except NumberError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None
        return result
