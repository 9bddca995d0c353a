from django import template

from common.money import format_usd

register = template.Library()


@register.filter
def dollars(micros: int | None, places: int = 2) -> str:
    """Micro-dollars as $1,234.56 (or more places: `|dollars:6` for exact per-second amounts)."""
    if micros is None:
        return "—"
    return format_usd(micros=int(micros), places=int(places))


@register.filter
def cents(value: int | None) -> str:
    """Whole cents as $1,234.56."""
    if value is None:
        return "—"
    return format_usd(micros=int(value) * 10_000)
