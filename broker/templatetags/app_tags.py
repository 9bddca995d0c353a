"""Display filters for the customer portal, all through the one money formatter (common.money)."""

from decimal import Decimal

from django import template

from common.money import format_money, format_price, to_micros
from common.templatetags import display
from marketplace.templatetags.portal_tags import reliability

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    """An amount from micro-dollars: $1,234.57 (two decimals; see common.money.format_money)."""
    if micros is None or micros == "":
        return "—"
    return format_money(micros=int(micros))


@register.filter
def dollars(value: Decimal | str | None) -> str:
    """A price given as a dollar Decimal (an offer's per-GPU-hour price): $2.45, $0.0125 (common.money)."""
    if value is None or value == "":
        return "—"
    return format_price(micros=to_micros(amount=Decimal(str(value))))


@register.filter
def pct(fraction: float | None) -> str:
    """A share (utilisation) as a percentage with one decimal."""
    if fraction is None:
        return "—"
    return f"{float(fraction) * 100:.1f}%"


register.filter("reliability", reliability)  # the provider portal's filter: one formatter for every page
# The shared display filters (common/templatetags/display.py), for templates that load app_tags.
for _name, _filter in (("price", display.price), ("rate", display.rate), ("label", display.label)):
    register.filter(_name, _filter)


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
