"""The CLI's copy of the display rules (rigshift_client.display) agrees with the server's formatters."""

from hypothesis import example, given
from hypothesis import strategies as st
from rigshift_client import display

from broker.models import EndReason, JobMode
from common.labels import enum_label
from common.money import format_money, format_price, format_rate, from_micros
from marketplace.models import Region, Tier
from marketplace.services.reliability import reliability_percent, reliability_public

MICROS = st.integers(min_value=-(10**15), max_value=10**15)


@given(MICROS)
@example(0)
@example(-1)
@example(4_999)
@example(5_000)
@example(-5_000)
@example(499_997_584)
def test_amounts_agree(micros: int) -> None:
    assert display.money(str(from_micros(micros=micros))) == format_money(micros=micros)


@given(MICROS)
@example(12_500)
@example(34)
@example(2_450_000)
def test_prices_agree(micros: int) -> None:
    api_value = str(from_micros(micros=micros))
    assert display.price(api_value) == format_price(micros=micros)
    assert display.rate(api_value, "GPU-hour") == format_rate(micros=micros, unit="GPU-hour")


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
@example(0.9622422839506173)
@example(0.96225)
@example(0.0)
@example(1.0)
def test_reliability_agrees(ratio: float) -> None:
    api_value = reliability_public(ratio)  # what the API sends
    assert display.reliability_percent(api_value) == reliability_percent(ratio)


def test_enumeration_labels_agree() -> None:
    for field, choices in (("tier", Tier), ("region", Region), ("mode", JobMode), ("end_reason", EndReason)):
        for value, label in choices.choices:
            assert display.label(value, field) == enum_label(value, field=field) == label
    assert display.label("not_a_gpu") == enum_label("not_a_gpu") == "Not a GPU"


def test_examples_from_the_issue() -> None:
    assert display.reliability_percent(reliability_public(0.9622422839506173)) == "96.2%"
    assert display.money("499.997584") == "$500.00"
    assert format_money(micros=-0) == "$0.00" and format_money(micros=-1) == "-<$0.01"
    assert format_money(micros=17_780_700) == "$17.78"
    assert format_rate(micros=5_000_000, unit="GPU-hour") == "$5.00/GPU-hour"
    assert enum_label("fine_tuning", field="tier") == "Fine-tuning"
