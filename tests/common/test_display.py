"""One money formatter and one enumeration formatter (issue 17, point 4)."""

import re
from pathlib import Path

import pytest
from django import forms
from django.test import Client
from hypothesis import example, given
from hypothesis import strategies as st

from common.labels import enum_label, humanise
from common.money import (
    format_amount_plain,
    format_dollars,
    format_money,
    format_price,
    format_rate,
    format_usd,
)
from tests.factories import CustomerFactory, NodeFactory, ProviderFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("micros", "shown"),
    [
        (0, "$0.00"),
        (-0, "$0.00"),
        (1, "<$0.01"),
        (-1, "-<$0.01"),
        (5_000, "$0.01"),
        (17_780_700, "$17.78"),
        (499_997_584, "$500.00"),
        (-4_000_000, "-$4.00"),
        (1_234_567_890, "$1,234.57"),
    ],
)
def test_amounts_have_two_decimals_and_a_currency(micros: int, shown: str) -> None:
    assert format_money(micros=micros) == shown
    assert format_usd(micros=micros) == shown


@given(st.integers(min_value=-(10**14), max_value=10**14))
@example(-4_999)
@example(-5_000)
def test_no_negative_zero_and_always_a_currency(micros: int) -> None:
    shown = format_money(micros=micros)
    assert "$" in shown and not shown.startswith("-$0.00") and shown != "-$0.00"
    assert re.fullmatch(r"-?(<\$0\.01|\$\d{1,3}(,\d{3})*\.\d\d)", shown), shown
    plain = format_amount_plain(micros=micros)
    assert plain != "-0.00" and re.fullmatch(r"-?\d+\.\d\d", plain)


def test_prices_keep_their_digits_and_say_their_unit() -> None:
    assert format_price(micros=2_450_000) == "$2.45"
    assert format_price(micros=12_500) == "$0.0125"
    assert format_price(micros=34) == "$0.000034"
    assert format_rate(micros=5_000_000, unit="GPU-hour") == "$5.00/GPU-hour"
    assert format_dollars(amount="1599.00") == "$1,599.00"


def test_enumerations_show_labels_not_slugs() -> None:
    assert enum_label("fine_tuning", field="tier") == "Fine-tuning"
    assert enum_label("eu", field="region") == "Europe"
    assert enum_label("on_demand", field="mode") == "On demand"
    assert humanise("fine_tuning") == "Fine-tuning" and humanise("not_a_gpu") == "Not a GPU"
    assert enum_label(None) == "—"


def test_templates_never_put_a_dollar_sign_before_an_unformatted_number() -> None:
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        if re.search(r"\$\{\{", text) or "|dollars:6" in text or re.search(r"-\{\{[^}]*\|dollars", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_help_texts_have_no_literal_backticks() -> None:
    from broker.forms import CustomerSignupForm, JobBookingForm, OfferSearchForm, TopUpForm
    from marketplace.forms import NodeListingForm, NodeRegisterForm, ProviderSignupForm
    from marketplace.views.assessment import FleetAssessmentForm

    form_classes: list[type[forms.Form]] = [
        CustomerSignupForm,
        JobBookingForm,
        OfferSearchForm,
        TopUpForm,
        NodeListingForm,
        NodeRegisterForm,
        ProviderSignupForm,
        FleetAssessmentForm,
    ]
    for form_class in form_classes:
        for name, field in form_class.base_fields.items():
            assert "`" not in str(field.help_text) and "`" not in str(field.label or ""), (form_class, name)


@pytest.mark.django_db
def test_offer_search_page_shows_tier_and_region_labels() -> None:
    NodeFactory(name="labelled", region="eu")  # the factory's RTX 4090 is fine_tuning
    client = Client()
    client.force_login(CustomerFactory().user)
    html = client.get("/app/search/").content.decode()
    assert "Fine-tuning" in html and "Europe" in html
    assert ">fine_tuning<" not in html and ">eu /" not in html


@pytest.mark.django_db
def test_earnings_page_shows_two_decimal_amounts_and_no_negative_zero() -> None:
    client = Client()
    client.force_login(ProviderFactory().user)
    html = client.get("/provider/earnings/").content.decode()
    assert "$0.00" in html
    assert "-$0.00" not in html and "$0.000000" not in html
