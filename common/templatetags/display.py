"""Display filters shared by every page: money through common.money, enumerations through common.labels.

{{ micros|money }}             $1,234.57 (amounts: two decimals, no negative zero)
{{ micros|deduction }}         -$12.00 for a line subtracted from a total ($0.00 when nothing is)
{{ micros|price }}             $0.0125 (a price whose unit the column or sentence states)
{{ micros|rate:"GPU-hour" }}   $0.0125/GPU-hour
{{ dollars|dollar_amount }}    an amount given in dollars ("1599.00") → $1,599.00
{{ dollars|dollar_price }}     a price given in dollars ("0.012500") → $0.0125
{{ value|label:"tier" }}       Fine-tuning (never the slug)
"""

from decimal import Decimal

from django import template

from common.labels import enum_label
from common.money import format_dollars, format_money, format_price, format_rate, to_micros

register = template.Library()

NONE = "—"


@register.filter
def money(micros: int | None) -> str:
    return NONE if micros is None or micros == "" else format_money(micros=int(micros))


@register.filter
def deduction(micros: int | None) -> str:
    return NONE if micros is None or micros == "" else format_money(micros=-int(micros))


@register.filter
def price(micros: int | None) -> str:
    return NONE if micros is None or micros == "" else format_price(micros=int(micros))


@register.filter
def rate(micros: int | None, unit: str) -> str:
    return NONE if micros is None or micros == "" else format_rate(micros=int(micros), unit=unit)


@register.filter
def dollar_amount(value: Decimal | str | int | None) -> str:
    return NONE if value is None or value == "" else format_dollars(amount=value)


@register.filter
def dollar_price(value: Decimal | str | int | None) -> str:
    """A price given in dollars ("0.250000") → $0.25, keeping sub-cent digits it has."""
    return NONE if value is None or value == "" else format_price(micros=to_micros(amount=value))


@register.filter
def label(value: object, field: str = "") -> str:
    return enum_label(value, field=field)
