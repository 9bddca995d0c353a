"""Billing and financing display filters, through the one money formatter (common.money)."""

from django import template

from common.money import format_money, format_price

register = template.Library()


@register.filter
def dollars(micros: int | None, places: int = 2) -> str:
    """An amount from micro-dollars, $1,234.56; `|dollars:4` is a price (per GPU-hour), with the digits it has."""
    if micros is None:
        return "—"
    if int(places) > 2:
        return format_price(micros=int(micros))
    return format_money(micros=int(micros))


@register.filter
def deduction(micros: int | None) -> str:
    """A line subtracted from a total: -$12.00, and $0.00 (never -$0.00) when nothing is."""
    if micros is None:
        return "—"
    return format_money(micros=-int(micros))


@register.filter
def cents(value: int | None) -> str:
    """Whole cents as $1,234.56."""
    if value is None:
        return "—"
    return format_money(micros=int(value) * 10_000)
