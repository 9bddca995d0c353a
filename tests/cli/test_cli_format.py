"""Pure output helpers of the CLI (no server)."""

import io
import json
from pathlib import Path

import pytest
from rigshift_cli.main import col, config_load, money, print_table, when


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2.450000", "$2.45"),
        ("0.012500", "$0.01"),
        ("-4.000000", "-$4.00"),
        ("1234.5", "$1,234.50"),
        ("499.997584", "$500.00"),
        ("-0.000000", "$0.00"),
        ("0.000400", "<$0.01"),
        (None, "-"),
    ],
)
def test_money(value: str | None, shown: str) -> None:
    assert money(value) == shown


def test_when_shortens_iso_times() -> None:
    assert when("2026-11-27T09:44:57.042546+00:00") == "2026-11-27 09:44:57 UTC"
    assert when("pending") == "pending"


def test_table_aligns_numbers_right_and_text_left() -> None:
    out = io.StringIO()
    rows = [{"name": "a", "price": "$0.40"}, {"name": "longer", "price": "$10.00"}]
    print_table(rows, [col("NAME", "name"), col("PRICE", "price")], out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "NAME     PRICE"
    assert lines[2] == "a        $0.40"
    assert lines[3] == "longer  $10.00"
    empty = io.StringIO()
    print_table([], [col("X", "x")], empty)
    assert empty.getvalue() == "(none)\n"


def test_bad_config_file_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rigshift_cli.main import UsageError

    path = tmp_path / "c.json"
    monkeypatch.setenv("RIGSHIFT_CONFIG", str(path))
    assert config_load() == {}
    path.write_text(json.dumps({"server": "http://x", "token": "rs_1"}))
    assert config_load()["token"] == "rs_1"
    path.write_text("{not json")
    with pytest.raises(UsageError):
        config_load()
