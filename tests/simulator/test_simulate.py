"""The market simulator: a small run reconciles, its ledger checks out, its last line parses, and it is
deterministic for a seed."""

import re
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from billing.models import Settlement, UsageRecord
from broker.models import Job, Lease
from marketplace.models import Node, NodeHeartbeat
from simulator.simulation import SimConfig, simulation_run

LAST = re.compile(
    r"^jobs=(?P<jobs>\d+) placed=(?P<placed>\d+) completed=(?P<completed>\d+) "
    r"median_wait_s=(?P<wait>\d+) utilisation=(?P<util>[0-9.]+) ledger_ok=(?P<ok>[01])$"
)

pytestmark = pytest.mark.django_db(transaction=True)  # failover and matching run on commit, as in production


def _run(**options: Any) -> str:
    out = StringIO()
    call_command("simulate", in_place=True, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def test_small_run_reconciles_and_last_line_parses(tmp_path: Path) -> None:
    text = _run(providers=6, customers=5, hours=3, seed=11, plots=tmp_path)
    lines = text.strip().splitlines()
    match = LAST.match(lines[-1])
    assert match, lines[-1]
    assert match["ok"] == "1"
    booked, placed = int(match["jobs"]), int(match["placed"])
    assert booked > 0 and 0 < placed <= booked
    assert "RECONCILIATION FAILED" not in text
    assert "ledger_check: OK" in text
    # the printed identities are the ones the report checks
    jobs_check = next(line for line in lines if "placed + pending + refused + cancelled + expired" in line)
    left, right = jobs_check.split("=")[1:3]
    assert int(left.strip()) == int(right.split()[-1]) == booked
    money_check = next(line for line in lines if line.strip().startswith("check: in "))
    assert money_check.endswith("OK")
    # the agents went through the API: heartbeats stored, usage metered and settled
    assert NodeHeartbeat.objects.exists()
    assert UsageRecord.objects.exists() and Settlement.objects.exists()
    assert Lease.objects.count() >= placed
    assert Node.objects.filter(listed=True, verified=True).exists()
    assert Node.objects.filter(gpu_model__tier="unsuitable", listed=False).exists()  # mining cards never listed
    assert not Lease.objects.filter(node__gpu_model__tier="unsuitable").exists()
    for name in ("utilisation.png", "waits.png", "revenue.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < 200_000


def test_identities_hold_in_the_report_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an optional extra: a run without charts needs none
    outcome = simulation_run(config=SimConfig(providers=5, customers=4, hours=2, seed=5))
    report = outcome.report
    assert report.identities() == []
    assert report.ledger_ok
    assert report.placed + report.pending + report.refused + report.cancelled_unplaced + report.expired_unplaced == (
        report.booked
    )
    assert report.money_in == report.money_out + report.balances_total
    assert report.charged == report.fees + report.reserve + report.provider_share
    assert report.created == Job.objects.count()
    assert outcome.lines[-1] == report.last_line()


def test_same_seed_same_market() -> None:
    first = simulation_run(config=SimConfig(providers=4, customers=3, hours=2, seed=21))
    call_command("flush", interactive=False, verbosity=0)
    second = simulation_run(config=SimConfig(providers=4, customers=3, hours=2, seed=21))
    a, b = first.report, second.report
    assert a.last_line() == b.last_line()
    assert (a.booked, a.placed, a.completed, a.charged, a.money_in, a.balances) == (
        b.booked,
        b.placed,
        b.completed,
        b.charged,
        b.money_in,
        b.balances,
    )
    assert sorted(a.waits_s) == sorted(b.waits_s)
