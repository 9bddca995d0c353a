"""Hypothesis on the fleet CSV import: whatever bytes arrive, the parser returns clean lines or a clear
ValidationFailed / PayloadTooLarge (never another exception); and any fleet written as a CSV — any of the
accepted separators, a header or not, a BOM, CRLF, blank lines, stray spaces — reads back exactly."""

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import PayloadTooLarge, ValidationFailed
from marketplace.services.assessment import MAX_COUNT_PER_LINE, MAX_NAME_LENGTH, fleet_assess, parse_fleet_csv
from tests.factories import GPUModelFactory, ProviderFactory

_name_chars = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=',;\t"\ufeff\x85')
_names = (
    st.text(alphabet=_name_chars, min_size=1, max_size=60)
    .map(lambda s: " ".join(s.split()))
    .filter(lambda s: bool(s) and s.lower() not in {"model", "gpu", "gpu model", "gpu_model", "card", "name"})
)
_fleets = st.lists(st.tuples(_names, st.integers(min_value=1, max_value=MAX_COUNT_PER_LINE)), min_size=1, max_size=30)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000) | st.text(max_size=500).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_any_bytes_give_clean_lines_or_a_clear_error(data: bytes) -> None:
    try:
        lines = parse_fleet_csv(data=data)
    except (ValidationFailed, PayloadTooLarge) as exc:
        assert exc.message and exc.status_code in (400, 413)
        return
    assert lines
    for name, count in lines:
        assert name == " ".join(name.split()) and 0 < len(name) <= MAX_NAME_LENGTH
        assert isinstance(count, int) and 1 <= count <= MAX_COUNT_PER_LINE


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fleet=_fleets,
    delimiter=st.sampled_from([",", ";", "\t"]),
    header=st.booleans(),
    bom=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
    blank_every=st.integers(min_value=0, max_value=5),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_written_fleets_read_back_exactly(
    fleet: list[tuple[str, int]], delimiter: str, header: bool, bom: bool, newline: str, blank_every: int, pad: str
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    if header:
        writer.writerow(["model", "count"])
    for i, (name, count) in enumerate(fleet):
        writer.writerow([f"{pad}{name}", f"{pad}{count}"])
        if blank_every and i % blank_every == 0:
            out.write(newline)
    data = ("\ufeff" if bom else "") + out.getvalue()
    assert parse_fleet_csv(data=data.encode("utf-8")) == fleet


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    fleet=st.lists(
        st.tuples(
            st.sampled_from(["RTX 4090", "rtx4090", "RX 580 8GB", "GTX 1070", "Quadro 9000"]),
            st.integers(min_value=1, max_value=5000),
        ),
        min_size=1,
        max_size=8,
    ),
    utilisation=st.decimals(min_value=Decimal("0"), max_value=Decimal("1"), places=2),
)
def test_assessment_counts_every_gpu_once(fleet: list[tuple[str, int]], utilisation: Decimal) -> None:
    GPUModelFactory()
    provider: Any = ProviderFactory()
    assessment = fleet_assess(provider=provider, lines=fleet, utilisation=utilisation)
    assert assessment.total_gpus == sum(count for _, count in fleet)
    assert 0 <= assessment.qualifying_gpus <= assessment.total_gpus
    assert sum(line.count for line in assessment.lines.all()) == assessment.total_gpus
