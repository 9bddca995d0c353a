"""Display filters for the customer portal: micro-dollars and dollar Decimals as money."""

from decimal import ROUND_HALF_UP, Decimal

from django import template

from common.money import format_usd

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    """$1,234.57 from micro-dollars; sub-cent amounts keep four decimals ($0.0125)."""
    if micros is None or micros == "":
        return "—"
    micros = int(micros)
    places = 2 if micros % 10_000 == 0 or abs(micros) >= 100_000_000 else 4
    return format_usd(micros=micros, places=places)


@register.filter
def dollars(value: Decimal | str | None) -> str:
    """$2.45 from a dollar Decimal (keeps up to four decimals when they matter)."""
    if value is None or value == "":
        return "—"
    amount = Decimal(str(value))
    places = 2 if amount == amount.quantize(Decimal("0.01")) else 4
    q = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if q < 0 else ""
    return f"{sign}${abs(q):,.{places}f}"


@register.filter
def pct(fraction: float | None) -> str:
    if fraction is None:
        return "—"
    return f"{float(fraction) * 100:.1f}%"


@register.filter
def hours(seconds: int | None) -> str:
    """3600 → 1; 5400 → 1.5"""
    if seconds is None:
        return "—"
    value = Decimal(int(seconds)) / 3600
    return f"{value.quantize(Decimal('0.01')).normalize():f}"


@register.filter
def plain(value: Decimal | str | None) -> str:
    """A decimal without trailing zeros, for form values and links: 0.900000 → 0.9"""
    if value is None or value == "":
        return ""
    return format(Decimal(str(value)).normalize(), "f")
