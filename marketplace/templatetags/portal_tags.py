"""Display filters for the provider portal: prices through common.money, reliability through its one formatter."""

from django import template

from common.money import format_price
from marketplace.services.reliability import reliability_percent

register = template.Library()


@register.filter
def usd_price(micros: int | None) -> str:
    """A price whose unit the page states: $2.45, $0.0125 (common.money.format_price)."""
    if micros is None:
        return "—"
    return format_price(micros=int(micros))


@register.filter
def reliability(value: object) -> str:
    """Reliability (a ratio or a node) as a percentage with one decimal: 0.9622 → 96.2%; "—" for none."""
    return reliability_percent(value)
