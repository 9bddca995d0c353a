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


# --- display: the one money formatter (pages, CSV, messages; the CLI has a checked copy in rigshift_client) ---
#
# Amounts: US dollars with two decimals ("$1,234.57"), rounded half-up; a non-zero amount under half a cent is
# "<$0.01" (never a misleading "$0.00"), zero is "$0.00" and never "-$0.00". Prices (per GPU-hour, per GB, per
# second) keep the digits they have, at least two and at most six ("$0.0125"), and say their unit when shown
# on their own ("$0.0125/GPU-hour").
CURRENCY_SYMBOL = "$"
RATE_MAX_PLACES = 6


def _grouped(value: Decimal, places: int) -> str:
    return f"{value:,.{places}f}"


def format_money(*, micros: int) -> str:
    """An amount: $1,234.57; -$4.00; $0.00; <$0.01 for a non-zero amount that rounds to zero cents."""
    cents = (Decimal(int(micros)) / MICROS).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if cents == 0:
        if micros == 0:
            return f"{CURRENCY_SYMBOL}0.00"
        return f"{'-' if micros < 0 else ''}<{CURRENCY_SYMBOL}0.01"
    sign = "-" if cents < 0 else ""
    return f"{sign}{CURRENCY_SYMBOL}{_grouped(abs(cents), 2)}"


def format_price(*, micros: int) -> str:
    """A price without its unit: the digits it has, two to six decimals ($2.45, $0.0125, $0.000034)."""
    value = Decimal(int(micros)) / MICROS
    exact = value.quantize(Decimal(1).scaleb(-RATE_MAX_PLACES))
    places = max(2, -exact.normalize().as_tuple().exponent) if exact else 2  # type: ignore[operator]
    places = min(places, RATE_MAX_PLACES)
    if exact == 0:
        return f"{CURRENCY_SYMBOL}0.00"
    sign = "-" if exact < 0 else ""
    return f"{sign}{CURRENCY_SYMBOL}{_grouped(abs(exact), places)}"


def format_amount_plain(*, micros: int) -> str:
    """An amount for CSV cells: two decimals, no symbol or grouping ("1234.57", "0.00", never "-0.00")."""
    cents = (Decimal(int(micros)) / MICROS).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{cents:.2f}" if cents else "0.00"


def format_price_plain(*, micros: int) -> str:
    """A price for CSV cells: the digits it has, two to six decimals, no symbol ("2.45", "0.0125")."""
    return format_price(micros=micros).replace(CURRENCY_SYMBOL, "").replace(",", "")


def format_rate(*, micros: int, unit: str) -> str:
    """A price with its unit: $2.45/GPU-hour, $0.000034/GB."""
    return f"{format_price(micros=micros)}/{unit}"


def format_usd(*, micros: int, places: int = 2) -> str:
    """Deprecated spelling kept for callers: an amount (places=2) or a price (more places). Prefer the above."""
    return format_money(micros=micros) if places <= 2 else format_price(micros=micros)


def format_dollars(*, amount: Decimal | str | int) -> str:
    """An amount given in dollars (a report's "1599.00") through the same formatter."""
    return format_money(micros=to_micros(amount=amount))


def prorate(*, micros_per_hour: int, seconds: int, gpus: int = 1) -> int:
    """Cost of `gpus` GPUs for `seconds` at a per-GPU-hour price, floored to a micro-dollar.

    Callers rate cumulative seconds and charge the difference, so flooring never drifts.
    """
    return (micros_per_hour * seconds * gpus) // 3600
