import contextlib
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.selectors.offer_query import FIELDS, OfferQueryError, parse_offer_order, parse_offer_query
from common.errors import ValidationFailed


def test_parses_the_issue_example() -> None:
    clauses = parse_offer_query(q="gpu_ram>=24 num_gpus>=2 reliability>0.98 region in [eu,us] verified==true")
    assert [(c.field, c.op, c.value) for c in clauses] == [
        ("gpu_ram", ">=", Decimal(24)),
        ("num_gpus", ">=", Decimal(2)),
        ("reliability", ">", Decimal("0.98")),
        ("region", "in", ("eu", "us")),
        ("verified", "==", True),
    ]


def test_spaces_around_operators_and_inside_lists_are_tolerated() -> None:
    clauses = parse_offer_query(q="  gpu_ram >= 24   region notin [ eu , us ]  tier==training ")
    assert [(c.field, c.op, c.value) for c in clauses] == [
        ("gpu_ram", ">=", Decimal(24)),
        ("region", "notin", ("eu", "us")),
        ("tier", "==", "training"),
    ]


def test_quoted_gpu_name_and_single_equals() -> None:
    clauses = parse_offer_query(q='gpu_name="GeForce RTX 4090" country=de')
    assert [(c.field, c.op, c.value) for c in clauses] == [
        ("gpu_name", "==", "GeForce RTX 4090"),
        ("country", "==", "DE"),
    ]


def test_empty_query_is_no_clauses() -> None:
    assert parse_offer_query(q="") == []
    assert parse_offer_query(q="   ") == []


@pytest.mark.parametrize(
    ("q", "names"),
    [
        ("gpu_ram>=abc", ["gpu_ram>=abc", "GPU memory"]),
        ("tier==gold", ["tier==gold", "training", "fine_tuning"]),
        ("verified==maybe", ["verified==maybe", "true or false"]),
        ("price in 3", ["price in 3", "list"]),
        ("colour==red", ["colour", "gpu_ram", "dlperf_per_dollar"]),
        ("gpu_ram=>24", ["=>", ">="]),
        ("gpu_ram ~ 24", ["~"]),
        ("verified>true", ["verified>true", "== !="]),
        ("region==mars", ["mars", "eu"]),
        ("gpu_ram 24", ["Missing operator", "gpu_ram"]),
        ("gpu_ram>=", ["gpu_ram>="]),
        ("region in []", ["empty list"]),
        ("region==[eu]", ["only `in` and `notin`"]),
        ("country==DEU", ["DEU"]),
        ("price<1e400", ["1e400"]),
        ("price<nan", ["nan"]),
        (">=24", [">=24"]),
        ("[eu]", ["[eu]"]),
    ],
)
def test_bad_clauses_name_the_clause_and_what_is_allowed(q: str, names: list[str]) -> None:
    with pytest.raises(OfferQueryError) as info:
        parse_offer_query(q=q)
    assert isinstance(info.value, ValidationFailed)
    for name in names:
        assert name in info.value.message


def test_unknown_field_lists_every_field() -> None:
    with pytest.raises(OfferQueryError) as info:
        parse_offer_query(q="speed>3")
    for field in FIELDS:
        assert field in info.value.message


def test_order_parsing() -> None:
    assert parse_offer_order(order=None) == ("price", False)
    assert parse_offer_order(order="-dlperf_per_dollar") == ("dlperf_per_dollar", True)
    with pytest.raises(OfferQueryError, match="colour"):
        parse_offer_order(order="-colour")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=120))
def test_fuzz_parser_raises_only_offer_query_error(q: str) -> None:
    with contextlib.suppress(OfferQueryError):
        parse_offer_query(q=q)


_pieces = st.sampled_from(
    [
        *FIELDS,
        "<",
        "<=",
        "==",
        "!=",
        ">=",
        ">",
        "in",
        "notin",
        "=",
        "[",
        "]",
        ",",
        " ",
        "24",
        "-1",
        "0.5",
        "eu",
        "true",
        "abc",
        "1e9",
        '"',
        "'",
        "training",
        "DE",
        "x",
    ]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_pieces, max_size=12).map("".join))
def test_fuzz_parser_with_query_like_text(q: str) -> None:
    with contextlib.suppress(OfferQueryError):
        parse_offer_query(q=q)
