"""Display filters for the provider portal: prices in micro-dollars, reliability as a percentage."""

from django import template

from common.money import format_usd

register = template.Library()


@register.filter
def usd_price(micros: int | None) -> str:
    """$2.45, or up to four decimals for sub-cent prices ($0.0125)."""
    if micros is None:
        return "—"
    micros = int(micros)
    places = 2 if micros % 10_000 == 0 else 4
    return format_usd(micros=micros, places=places)


@register.filter
def percent(fraction: float | None, places: int = 1) -> str:
    """0.9912 → 99.1%"""
    if fraction is None:
        return "—"
    return f"{float(fraction) * 100:.{int(places)}f}%"
