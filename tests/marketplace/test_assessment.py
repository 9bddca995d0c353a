"""Fleet assessment service: CSV parsing, qualifying share, earnings at market prices, upgrade path, bad input."""

from decimal import Decimal

import pytest
from django.test import override_settings

from common.errors import PayloadTooLarge, ValidationFailed
from marketplace.models import FleetAssessment, FleetAssessmentLine, GPUModel
from marketplace.services.assessment import fleet_assess, parse_fleet_csv
from tests.factories import NodeFactory

MINING_FARM = [("RX580 8GB", 400), ("GTX 1070", 300), ("rtx 3060ti lhr", 200), ("3090", 60)]


# --- CSV parsing ---------------------------------------------------------------------------------------------------


def test_parse_csv_with_header_bom_blank_lines_and_whitespace() -> None:
    data = '\ufeffmodel,count\r\n\r\n  RX580 8GB , 400 \r\nGTX 1070,300\n\n"RTX 3090, 24GB",60\n'.encode()
    assert parse_fleet_csv(data=data) == [("RX580 8GB", 400), ("GTX 1070", 300), ("RTX 3090, 24GB", 60)]


def test_parse_csv_without_header_and_with_other_separators() -> None:
    assert parse_fleet_csv(data=b"rx 580;12\n3090;2\n") == [("rx 580", 12), ("3090", 2)]
    assert parse_fleet_csv(data=b"rx 580\t12\n") == [("rx 580", 12)]
    assert parse_fleet_csv(data=b'rx 580,"1,200"\n') == [("rx 580", 1200)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\n \n\r\n", "empty"),
        (b"model,count\n", "no fleet lines"),
        (b"RX 580\n", "Line 1: the count is missing"),
        (b"model,count\nRX 580,4\nGTX 1070,\n", "Line 3: the count is missing"),
        (b"RX 580,four\n", "Line 1: count 'four' is not a whole number"),
        (b"RX 580,2.5\n", "Line 1: count '2.5' is not a whole number"),
        (b"RX 580,-3\n", "Line 1: count must be at least 1"),
        (b"RX 580,0\n", "Line 1: count must be at least 1"),
        (b"RX 580,100001\n", "Line 1: count 100,001 is above the limit"),
        (b"RX 580,4,extra\n", "Line 1: expected two columns"),
        (b",4\n", "Line 1: the model name is empty"),
        (b"\xff\xfe\x00R\x00X", "binary"),
        (b"RX 580,4\n\xc3\x28 bad,1\n", "not UTF-8"),
        (b"RX 580,NaN\n", "not a whole number"),
        (b"RX 580,1e400\n", "not a whole number"),
        (b"RX 580," + b"9" * 5000 + b"\n", "above the limit"),
    ],
)
def test_parse_csv_errors_name_the_problem(data, message) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_fleet_csv(data=data)
    assert message in excinfo.value.message


def test_parse_csv_line_limit() -> None:
    ok = "".join(f"model {i},1\n" for i in range(5000)).encode()
    assert len(parse_fleet_csv(data=ok)) == 5000
    with pytest.raises(ValidationFailed, match="more than 5,000 lines"):
        parse_fleet_csv(data=ok + b"one more,1\n")


@override_settings(RIGSHIFT_MAX_UPLOAD_BYTES=1000)
def test_parse_csv_refuses_oversized_data() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_fleet_csv(data=b"RX 580,1\n" * 200)


# --- assessment ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_mining_farm_is_between_5_and_15_percent_qualifying(provider) -> None:
    assessment = fleet_assess(provider=provider, lines=MINING_FARM)
    report = assessment.report
    assert report["total_gpus"] == 960 and report["qualifying_gpus"] == 60
    assert report["qualifying_share"] == 0.0625
    assert 0.05 <= report["qualifying_share"] <= 0.15
    assert report["tiers"] == {"training": 0, "fine_tuning": 60, "inference": 0, "unsuitable": 900, "unmatched": 0}
    assert [line["slug"] for line in report["lines"]] == ["rx-580-8gb", "gtx-1070", "rtx-3060-ti", "rtx-3090"]
    assert [line["tier"] for line in report["lines"]] == ["unsuitable", "unsuitable", "unsuitable", "fine_tuning"]
    assert all(line["reason"] for line in report["lines"])
    assert assessment.total_gpus == 960 and assessment.qualifying_gpus == 60
    rows = list(FleetAssessmentLine.objects.filter(assessment=assessment).values_list("raw_model", "count"))
    assert rows == MINING_FARM


@pytest.mark.django_db
def test_earnings_use_reference_price_without_listings(provider) -> None:
    report = fleet_assess(provider=provider, lines=[("RTX 3090", 10), ("RX 580", 5)]).report
    # $0.22/h reference × 730 h × 0.6 × (1 − 0.15 fee − 0.02 reserve) = $79.9788 per GPU per month
    line = report["lines"][0]
    assert line["price_source"] == "reference" and line["price_per_gpu_hour"] == "0.220000"
    assert line["monthly_earnings_per_gpu"] == "79.98"
    assert line["monthly_earnings_total"] == "799.79"
    assert report["lines"][1]["monthly_earnings_per_gpu"] == "0.00"
    assert report["earnings"] == {"monthly_total": "799.79", "monthly_per_qualifying_gpu": "79.98"}


@pytest.mark.django_db
def test_earnings_use_median_of_listed_nodes(provider) -> None:
    model = GPUModel.objects.get(slug="rtx-3090")
    for price in (300_000, 400_000, 1_000_000):
        NodeFactory(gpu_model=model, price_micros=price)
    NodeFactory(gpu_model=model, price_micros=9_000_000, listed=False)  # not listed: ignored
    report = fleet_assess(provider=provider, lines=[("3090", 1)], utilisation=Decimal("0.5")).report
    line = report["lines"][0]
    assert line["price_source"] == "market" and line["price_per_gpu_hour"] == "0.400000"
    # $0.40 × 0.5 × 730 × 0.83 = $121.18
    assert line["monthly_earnings_per_gpu"] == "121.18"
    assert report["utilisation"] == "0.500"


@pytest.mark.django_db
@override_settings(RIGSHIFT_PLATFORM_FEE_RATE="0.20")
def test_earnings_are_net_of_the_platform_fee(provider) -> None:
    report = fleet_assess(provider=provider, lines=[("RTX 4090", 1)], utilisation=1).report
    # $0.40 × 1 × 730 × (1 − 0.20 − 0.02) = $227.76
    assert report["lines"][0]["monthly_earnings_per_gpu"] == "227.76"
    assert report["platform_fee_rate"] == "0.20"


@pytest.mark.django_db
def test_upgrade_path_costs_earnings_and_payback(provider) -> None:
    report = fleet_assess(provider=provider, lines=[("RX 580 8GB", 100), ("RTX 4090", 2)]).report
    path = report["upgrade_path"]
    assert path["replaces_gpus"] == 100
    by_slug = {option["slug"]: option for option in path["options"]}
    assert set(by_slug) == {"rtx-4090", "rtx-3090", "l40s"}
    rtx = by_slug["rtx-4090"]
    assert rtx["total_cost"] == "159900.00"  # 100 × $1,599 launch price
    # Upgrade options are projected as underwriting projects them: the market utilisation (none observed: the
    # 25 % floor), $0.40 × 730 × 0.25 × 0.83 = $60.59 per GPU per month.
    assert rtx["monthly_earnings_per_gpu"] == "60.59"
    assert rtx["monthly_earnings_total"] == "6059.00"
    # The two RTX 4090 already there count at the assessment's 60 %: 2 × $145.416 = $290.832.
    assert rtx["fleet_monthly_earnings_after"] == "6349.83"
    # A provider without earnings history is not offered an upgrade advance: no payback, and the reason why.
    assert rtx["payback_months"] is None
    assert rtx["financing"]["offered"] is False and rtx["financing"]["reasons"][0].startswith("D2")
    assert rtx["financing"]["count"] == 100 and rtx["financing"]["applications"] == 1
    assert by_slug["rtx-3090"]["total_cost"] == "75000.00"


@pytest.mark.django_db
def test_no_upgrade_needed_when_everything_qualifies(provider) -> None:
    report = fleet_assess(provider=provider, lines=[("H100 SXM", 8)]).report
    assert report["qualifying_share"] == 1.0
    assert report["upgrade_path"]["options"] == []
    assert "no upgrade" in report["upgrade_path"]["note"]


@pytest.mark.django_db
def test_unknown_models_are_reported_never_dropped(provider) -> None:
    assessment = fleet_assess(provider=provider, lines=[("Voodoo 5 6000", 3), ("RTX 3090", 1)])
    report = assessment.report
    assert report["unmatched"] == [
        {
            "position": 1,
            "raw_model": "Voodoo 5 6000",
            "count": 3,
            "message": report["unmatched"][0]["message"],
        }
    ]
    assert "Voodoo 5 6000" in report["unmatched"][0]["message"]
    assert report["total_gpus"] == 4 and report["unmatched_gpus"] == 3 and report["qualifying_share"] == 0.25
    assert assessment.lines.get(position=1).gpu_model is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lines", "utilisation", "message"),
    [
        ([], Decimal("0.6"), "empty"),
        ([("RTX 3090", -1)], Decimal("0.6"), "Line 1: count must be at least 1"),
        ([("RTX 3090", 1), ("RX 580", 0)], Decimal("0.6"), "Line 2: count must be at least 1"),
        ([("RTX 3090", 10**9)], Decimal("0.6"), "above the limit"),
        ([("", 1)], Decimal("0.6"), "model name is empty"),
        ([("RTX 3090", 1)], Decimal("1.5"), "between 0 and 1"),
        ([("RTX 3090", 1)], Decimal("-0.1"), "between 0 and 1"),
        ([("RTX 3090", 1)] * 5001, Decimal("0.6"), "more than 5,000 lines"),
    ],
)
def test_bad_input_saves_nothing(provider, lines, utilisation, message) -> None:
    with pytest.raises(ValidationFailed, match=message):
        fleet_assess(provider=provider, lines=lines, utilisation=utilisation)
    assert FleetAssessment.objects.count() == 0
    assert FleetAssessmentLine.objects.count() == 0
