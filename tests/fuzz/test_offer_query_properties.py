"""Hypothesis: any well-formed offer query, however it is spaced, parses back to the clauses it was built from.

(tests/broker/test_offer_query.py fuzzes the parser with arbitrary text for "only OfferQueryError";
this adds the positive direction: nothing valid is rejected or misread.)
"""

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.selectors.offer_query import COMPARISONS, FIELDS, LIST_OPS, MAX_CLAUSES, Kind, parse_offer_query
from marketplace.models import Region, Tier

_space = st.sampled_from(["", " ", "  "])
_numbers = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=3, allow_nan=False)
_gpu_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


def _values(kind: Kind) -> st.SearchStrategy[tuple[str, Any]]:
    """(as written, as parsed) for one value of `kind`."""
    if kind is Kind.NUMBER:
        return _numbers.map(lambda d: (str(d), d))
    if kind is Kind.BOOL:
        return st.sampled_from([("true", True), ("false", False), ("1", True), ("no", False), ("TRUE", True)])
    if kind is Kind.TIER:
        return st.sampled_from([t.value for t in Tier]).flatmap(
            lambda t: st.sampled_from([(t, t), (t.upper(), t), (t.replace("_", "-"), t)])
        )
    if kind is Kind.REGION:
        return st.sampled_from([r.value for r in Region]).map(lambda r: (r.upper(), r))
    if kind is Kind.COUNTRY:
        return st.sampled_from(["de", "US", "Fr", "jp"]).map(lambda c: (c, c.upper()))
    return _gpu_names.map(lambda s: (s, s))


def _ops(kind: Kind) -> list[str]:
    if kind in (Kind.NUMBER, Kind.TIER):
        return [*COMPARISONS, *LIST_OPS]
    if kind is Kind.BOOL:
        return ["==", "!="]
    return ["==", "!=", *LIST_OPS]


@st.composite
def clauses(draw: st.DrawFn) -> tuple[str, tuple[str, str, Any]]:
    spec = FIELDS[draw(st.sampled_from(sorted(FIELDS)))]
    op = draw(st.sampled_from(_ops(spec.kind)))
    if op in LIST_OPS:
        items = draw(st.lists(_values(spec.kind), min_size=1, max_size=4))
        written = "[" + ",".join(f"{draw(_space)}{w}{draw(_space)}" for w, _ in items) + "]"
        text = f"{spec.name} {op}{draw(_space)} {written}"
        return text, (spec.name, op, tuple(v for _, v in items))
    written, value = draw(_values(spec.kind))
    if spec.kind is Kind.TEXT and draw(st.booleans()):
        written = f'"{written}"'
    shown_op = "=" if op == "==" and draw(st.booleans()) else op
    return f"{spec.name}{draw(_space)}{shown_op}{draw(_space)}{written}", (spec.name, op, value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(clauses(), min_size=1, max_size=MAX_CLAUSES))
def test_well_formed_queries_parse_to_their_clauses(built: list[tuple[str, tuple[str, str, Any]]]) -> None:
    query = " ".join(text for text, _ in built)
    parsed = parse_offer_query(q=query)
    assert [(c.field, c.op, c.value) for c in parsed] == [expected for _, expected in built], query
