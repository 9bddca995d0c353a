"""The financing year (`simulate --scenario`): short runs reconcile, the ring is declined for related-party earnings
and never funded, and the base scenario loses lenders no principal."""

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Sum

from financing.models import Advance, AdvanceApplication, AdvanceFunding, AdvanceStatus, ContractDemandStatus

LAST = re.compile(
    r"^advances=(?P<advances>\d+) repaid=(?P<repaid>\d+) defaulted=(?P<defaulted>\d+) "
    r"lender_return_pct=(?P<ret>-?[0-9.]+) fraud_funded=(?P<fraud>\d+) ledger_ok=(?P<ok>[01])$"
)

pytestmark = pytest.mark.django_db(transaction=True)  # disbursement and delivery run on commit, as in production


def _run(**options: Any) -> re.Match[str]:
    out = StringIO()
    call_command("simulate", in_place=True, stdout=out, stderr=StringIO(), seed=7, **options)
    last = out.getvalue().strip().splitlines()[-1]
    match = LAST.match(last)
    assert match, out.getvalue()
    return match


def test_a_short_stressed_run_reconciles_and_funds_no_fraud() -> None:
    match = _run(days=30, scenario="stress")
    assert match["ok"] == "1" and match["fraud"] == "0"
    assert int(match["advances"]) >= 10  # market-backed and contract-backed
    ring = AdvanceApplication.objects.filter(provider__username="ring-farm")
    assert ring.count() == 2 and all(a.status == "declined" for a in ring)
    assert all(any(r.startswith("D7") for r in a.decline_reasons) for a in ring)
    assert not Advance.objects.filter(provider__username="ring-farm").exists()
    assert Advance.objects.filter(application__demand__isnull=False).count() == 6  # the miners' contract advances


def test_the_base_scenario_loses_lenders_no_principal() -> None:
    match = _run(days=42, scenario="base")
    assert match["ok"] == "1" and match["defaulted"] == "0"
    assert not Advance.objects.filter(status__in=[AdvanceStatus.DEFAULTED, AdvanceStatus.DELINQUENT]).exists()
    assert Advance.objects.aggregate(s=Sum("written_off_micros"))["s"] == 0
    delivered = Advance.objects.filter(application__demand__status=ContractDemandStatus.DELIVERED)
    assert delivered.count() == 6 and all(a.repaid_micros > 0 for a in delivered)
    assert AdvanceFunding.objects.values("lender").distinct().count() == 3  # automatic and hand-picked lenders
    assert float(match["ret"]) > 0
