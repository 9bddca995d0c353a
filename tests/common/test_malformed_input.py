"""Issue 12, point 6: malformed input is a 4xx with a clear message everywhere, never a 500.

Each case the issue lists (deep JSON on every JSON endpoint, login included; `1e999999999` as an amount or a
query value; `Infinity`/`NaN` in the money forms of the pages; bodies over the limit, with DEBUG on too) is
sent through the real URL stack (Django's test client, exceptions not re-raised) and must answer 4xx."""

from decimal import Decimal
from typing import Any

import pytest
from django import forms
from django.test import Client
from rest_framework import serializers

from common.errors import PayloadTooLarge, ValidationFailed
from common.json_body import json_parse
from common.numbers import (
    DecimalFormField,
    DecimalNumberField,
    MoneyField,
    MoneyFormField,
    NumberError,
    decimal_parse,
    money_parse,
    number_value,
)
from tests.security.world import World, world_build

BAD_NUMBERS = ["1e999999999", "-1e999999999", "Infinity", "-Infinity", "NaN", "sNaN", "inf", "1e-999999999"]
DEEP = "[" * 50_000


@pytest.fixture
def world(db: Any, settings: Any) -> World:
    settings.RIGSHIFT_RATE_LIMITS = {}
    return world_build()


def _client(world: World, role: str) -> Client:
    client = world.client(role)
    client.raise_request_exception = False
    return client


def _assert_clear_4xx(response: Any, *, json_body: bool = True) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if json_body:
        body = response.json()
        assert body["detail"] and body["code"], body


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("customer_a", "/api/v1/wallet/topups/"),
        ("customer_a", "/api/v1/jobs/"),
        ("customer_a", "/api/v1/quotes/"),
        ("anon", "/api/v1/auth/token/"),
        ("lender", "/api/v1/lender/capital/"),
        ("node_a", "/api/v1/agent/heartbeat"),
        ("node_a", "/api/v1/agent/register"),
        ("provider_a", "/api/v1/fleet-assessments/"),
    ],
)
def test_deeply_nested_json_is_a_400_on_every_json_endpoint(world: World, role: str, path: str) -> None:
    response = _client(world, role).post(path, DEEP, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "bad_json"
    assert "nested deeper" in response.json()["detail"]


def test_deeply_nested_json_on_the_login_page_is_not_a_500(world: World) -> None:
    response = _client(world, "anon").post("/accounts/login/", DEEP, content_type="application/json")
    assert response.status_code < 500


@pytest.mark.parametrize("debug", [False, True])
def test_a_json_body_over_the_limit_is_a_413_as_json_also_in_debug(world: World, settings: Any, debug: bool) -> None:
    settings.DEBUG = debug
    settings.RIGSHIFT_JSON_MAX_BYTES = 1000
    body = '{"amount": "' + "1" * 2000 + '"}'
    response = _client(world, "customer_a").post("/api/v1/wallet/topups/", body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "too_large"


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_bad_numbers_in_api_amounts_are_400(world: World, value: str) -> None:
    customer, lender, provider = (_client(world, r) for r in ("customer_a", "lender", "provider_a"))
    advance = world.advance_a.pk
    js = "application/json"
    _assert_clear_4xx(customer.post("/api/v1/wallet/topups/", {"amount": value}, content_type=js))
    _assert_clear_4xx(lender.post("/api/v1/lender/capital/", {"amount": value}, content_type=js))
    _assert_clear_4xx(lender.post(f"/api/v1/lender/advances/{advance}/fund/", {"amount": value}, content_type=js))
    prefs = {"mode": "auto", "max_per_advance": value, "tiers": [], "max_payoff_months": 12}
    _assert_clear_4xx(lender.put("/api/v1/lender/preferences/", prefs, content_type=js))
    payoff = f"/api/v1/financing/advances/{advance}/payoff/"
    _assert_clear_4xx(provider.post(payoff, {"amount": value}, content_type=js))


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("field", ["price", "gpu_ram", "num_gpus", "reliability"])
def test_bad_numbers_in_the_offer_query_are_400(world: World, value: str, field: str) -> None:
    response = _client(world, "customer_a").get("/api/v1/offers/", {"q": f"{field}>={value}"})
    if value == "1e-999999999" and response.status_code == 200:
        return  # a tiny positive number is a number: nothing to refuse
    _assert_clear_4xx(response)


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_bad_numbers_in_page_money_forms_are_not_500(world: World, value: str) -> None:
    lender, provider, customer = (_client(world, r) for r in ("lender", "provider_a", "customer_a"))
    advance = world.advance_a.pk
    for client, path, data in [
        (customer, "/app/wallet/", {"amount": value}),
        (lender, "/lender/capital/", {"amount": value}),
        (lender, "/lender/preferences/", {"mode": "auto", "max_per_advance": value, "max_payoff_months": 12}),
        (lender, f"/lender/advances/{advance}/", {"amount": value}),
        (provider, f"/provider/financing/advances/{advance}/", {"amount": value}),
    ]:
        response = client.post(path, data)
        assert response.status_code in (302, 400), (path, response.status_code)


def test_a_page_money_form_says_why_the_number_is_refused(world: World) -> None:
    lender = _client(world, "lender")
    response = lender.post("/lender/capital/", {"amount": "Infinity"}, follow=True)
    assert b"not NaN or Infinity" in response.content


# --- the parser and the number types on their own ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("[" * 33 + "]" * 33, "nested deeper"),
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": 1e999999999}', "out of range"),
        ('{"a": 1', "Expecting"),
        (b"\xff\xfe", "UTF-8"),
        ('{"a": ' + "9" * 5000 + "}", "digits"),
    ],
)
def test_json_parse_refuses_with_a_reason(raw: Any, why: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        json_parse(raw)
    assert why in exc.value.message


def test_json_parse_keeps_brackets_inside_strings_out_of_the_depth() -> None:
    assert json_parse('{"a": "' + "[" * 1000 + '"}') == {"a": "[" * 1000}
    assert json_parse("[" * 32 + "]" * 32) is not None


def test_json_parse_refuses_a_body_over_the_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        json_parse(b"[1]" * 10, max_bytes=10)


@pytest.mark.parametrize("raw", [*BAD_NUMBERS[:-1], True, None, [], {}, "1e10000", "12abc", "", " ", "1" * 41])
def test_number_value_refuses(raw: Any) -> None:
    with pytest.raises(NumberError):
        number_value(raw)


def test_number_types_accept_and_bound() -> None:
    assert money_parse("50.00", places=2) == 50_000_000
    assert money_parse(5, places=2) == 5_000_000
    assert money_parse("0.000001") == 1
    with pytest.raises(NumberError, match="floating-point"):
        money_parse(1.5)
    with pytest.raises(NumberError, match="at most"):
        money_parse("1000000000.01")
    with pytest.raises(NumberError, match="decimal place"):
        money_parse("1.001", places=2)
    with pytest.raises(NumberError, match="more than"):
        money_parse("0", positive=True)
    assert decimal_parse("1e3", places=1) == Decimal("1000.0")
    with pytest.raises(NumberError, match="between"):
        decimal_parse("1e13")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999999999"])
def test_the_form_and_api_field_types_refuse_non_finite_and_overflowing(bad: str) -> None:
    form_decimal = DecimalFormField(min_value=0, max_value=100, max_digits=6, decimal_places=1)
    api_decimal = DecimalNumberField(max_digits=12, decimal_places=6)
    with pytest.raises(forms.ValidationError):
        form_decimal.clean(bad)
    with pytest.raises(forms.ValidationError):
        MoneyFormField().clean(bad)
    with pytest.raises(serializers.ValidationError):
        api_decimal.run_validation(bad)
    with pytest.raises(serializers.ValidationError):
        MoneyField(places=2).run_validation(bad)


def test_the_form_and_api_field_types_accept_numbers() -> None:
    assert DecimalFormField(max_digits=6, decimal_places=1).clean("12.5") == Decimal("12.5")
    assert MoneyFormField().clean("5.00") == 5_000_000
    assert DecimalNumberField(max_digits=12, decimal_places=6).run_validation("1.25") == Decimal("1.250000")
    assert MoneyField(places=2).run_validation("1.50") == 1_500_000
