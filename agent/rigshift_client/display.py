"""How the CLI shows money, reliability and enumerations: the server's rules, copied (no Django here).

The server's formatters are common.money (amounts and prices), marketplace.services.reliability
(reliability_percent) and common.labels (enumeration labels); tests/cli/test_display_agrees.py checks that
these copies give the same text for the same values, so the CLI and the pages never disagree.

The API sends money as decimal strings in dollars ("499.997584") and reliability as a ratio rounded to
4 places (0.9622).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CURRENCY_SYMBOL = "$"
RATE_MAX_PLACES = 6
RELIABILITY_PLACES = 4
NONE = "-"

# Enumeration labels the CLI prints (the server's TextChoices labels; the test above keeps them equal).
LABELS: dict[str, dict[str, str]] = {
    "tier": {
        "training": "Training",
        "fine_tuning": "Fine-tuning",
        "inference": "Inference",
        "unsuitable": "Unsuitable",
    },
    "region": {
        "us": "North America",
        "eu": "Europe",
        "asia": "Asia",
        "sa": "South America",
        "oceania": "Oceania",
        "africa": "Africa",
    },
    "mode": {"on_demand": "On demand", "interruptible": "Interruptible", "reserved": "Reserved"},
    "end_reason": {
        "exited": "Exited",
        "oom": "Out of memory",
        "image_pull_failed": "Image pull failed",
        "start_failed": "Could not start",
        "stopped": "Stopped by the platform",
        "lease_ended": "Booked time over",
    },
}


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def money(value: object) -> str:
    """An amount from the API's dollars: $1,234.57; $0.00; <$0.01 for a non-zero amount under half a cent."""
    number = _decimal(value)
    if number is None:
        return NONE if value is None or value == "" else str(value)
    micros = int((number * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    cents = (Decimal(micros) / 1_000_000).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if cents == 0:
        if micros == 0:
            return f"{CURRENCY_SYMBOL}0.00"
        return f"{'-' if micros < 0 else ''}<{CURRENCY_SYMBOL}0.01"
    sign = "-" if cents < 0 else ""
    return f"{sign}{CURRENCY_SYMBOL}{abs(cents):,.2f}"


def price(value: object) -> str:
    """A price from the API's dollars, with the digits it has (two to six decimals): $2.45, $0.0125."""
    number = _decimal(value)
    if number is None:
        return NONE if value is None or value == "" else str(value)
    exact = number.quantize(Decimal(1).scaleb(-RATE_MAX_PLACES), rounding=ROUND_HALF_UP)
    if exact == 0:
        return f"{CURRENCY_SYMBOL}0.00"
    exponent = exact.normalize().as_tuple().exponent
    places = min(max(2, -exponent if isinstance(exponent, int) else 2), RATE_MAX_PLACES)
    sign = "-" if exact < 0 else ""
    return f"{sign}{CURRENCY_SYMBOL}{abs(exact):,.{places}f}"


def rate(value: object, unit: str) -> str:
    """A price with its unit: $2.45/GPU-hour."""
    shown = price(value)
    return shown if shown == NONE else f"{shown}/{unit}"


def reliability_percent(value: object) -> str:
    """The API's reliability (a ratio) as a percentage with one decimal: 0.9622 → 96.2%."""
    number = _decimal(value)
    if number is None:
        return NONE
    ratio = round(max(0.0, min(1.0, float(number))), RELIABILITY_PLACES)
    percent = (Decimal(str(ratio)) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{percent}%"


_HYPHENATED = {"fine_tuning"}
_WORDS = {"gpu": "GPU", "gpus": "GPUs", "api": "API", "sla": "SLA", "csv": "CSV", "ai": "AI"}


def label(value: object, field: str = "") -> str:
    """An enumeration value as its label ("fine_tuning" → "Fine-tuning"); unknown values are humanised."""
    if value is None or value == "":
        return NONE
    text = str(value)
    known = LABELS.get(field, {}).get(text)
    if known is not None:
        return known
    if text in _HYPHENATED:
        words = text.replace("_", "-")
    else:
        words = " ".join(_WORDS.get(word, word) for word in text.replace("-", "_").split("_"))
    return words[:1].upper() + words[1:]
