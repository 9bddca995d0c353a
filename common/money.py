"""Exact money: integer micro-dollars (1 USD = 1,000,000 micros). Never floats."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS = 1_000_000


def to_micros(*, amount: Decimal | str | int) -> int:
    """Dollars (a Decimal, str or int) to integer micro-dollars; raises ValueError on bad input."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {amount!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite number: {amount!r}")
    return int((value * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_micros(*, micros: int) -> Decimal:
    """Integer micro-dollars to a Decimal dollar amount with six places."""
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001"))


def format_usd(*, micros: int, places: int = 2) -> str:
    """Human display: $1,234.57 (rounded half-up to `places`)."""
    value = (Decimal(micros) / MICROS).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{places}f}"


def prorate(*, micros_per_hour: int, seconds: int, gpus: int = 1) -> int:
    """Cost of `gpus` GPUs for `seconds` at a per-GPU-hour price, floored to a micro-dollar.

    Callers rate cumulative seconds and charge the difference, so flooring never drifts.
    """
    return (micros_per_hour * seconds * gpus) // 3600
