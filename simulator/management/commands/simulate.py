"""`python manage.py simulate`: a whole market day in simulated time (see simulator/)."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from simulator.finance_year import YearConfig, finance_year_outcome
from simulator.plots import PlotsUnavailable, pyplot
from simulator.simulation import SimConfig, simulation_run

T = TypeVar("T")


class Command(BaseCommand):
    help = (
        "Simulate the marketplace: providers, node agents (through the agent API) and customers (booking the job "
        "mix of the Alibaba GPU trace) in simulated time, through the real services, tasks, ledger and settlement. "
        "Prints a reconciled report; the last line is `jobs=… placed=… completed=… median_wait_s=… utilisation=… "
        "ledger_ok=1`. By default it runs in a throwaway database (in-memory SQLite, or `<name>_simulate` on "
        "PostgreSQL) so your data is untouched; --in-place uses the configured database, which should be empty."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--providers", type=int, default=50)
        parser.add_argument("--customers", type=int, default=30)
        parser.add_argument("--hours", type=float, default=24.0)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--tick", type=int, default=60, help="simulated seconds per step (default 60)")
        parser.add_argument(
            "--scenario",
            choices=["base", "stress"],
            default=None,
            help="run a financing year instead of a market day (simulator/finance_year.py): base, or stress (prices "
            "of the financed models halve, financed nodes fail, a ring manufactures earnings, contracts delivered "
            "late or never); last line `advances=… repaid=… defaulted=… lender_return_pct=… fraud_funded=… "
            "ledger_ok=1`",
        )
        parser.add_argument("--days", type=int, default=365, help="with --scenario: simulated days (weekly ticks)")
        parser.add_argument(
            "--plots",
            type=Path,
            default=None,
            metavar="DIR",
            help="write PNG charts to DIR (needs matplotlib: pip install -r requirements-plots.txt)",
        )
        parser.add_argument(
            "--in-place", action="store_true", help="use the configured database instead of a throwaway one"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["providers"] < 1 or options["customers"] < 1 or options["hours"] <= 0 or options["tick"] < 1:
            raise CommandError("--providers and --customers must be at least 1, --hours and --tick above 0")
        if options["scenario"] is not None:
            self._year(options)
            return
        config = SimConfig(
            providers=options["providers"],
            customers=options["customers"],
            hours=options["hours"],
            seed=options["seed"],
            tick_s=options["tick"],
        )
        t0 = time.perf_counter()
        log = (lambda s: self.stderr.write(s)) if options["verbosity"] >= 1 else (lambda s: None)
        run = simulation_run if options["in_place"] else self._throwaway
        try:
            if options["plots"] is not None:
                pyplot()  # matplotlib missing: say so before building a database and running
            outcome = run(config=config, plots_dir=options["plots"], log=log)
        except PlotsUnavailable as exc:
            raise CommandError(str(exc)) from exc
        for line in outcome.lines[:-1]:
            self.stdout.write(line)
        if outcome.plots:
            self.stdout.write("charts: " + ", ".join(str(p) for p in outcome.plots))
        self.stdout.write(f"wall time including database setup: {time.perf_counter() - t0:.1f} s")
        self.stdout.write(outcome.lines[-1])
        if outcome.report.identities() or not outcome.report.ledger_ok:
            raise CommandError("the simulation does not reconcile (see above)")

    def _year(self, options: dict[str, Any]) -> None:
        if not 7 <= options["days"] <= 3650:
            raise CommandError("--days must be between 7 and 3650")
        config = YearConfig(days=options["days"], scenario=options["scenario"], seed=options["seed"])
        log = (lambda s: self.stderr.write(s)) if options["verbosity"] >= 1 else (lambda s: None)
        t0 = time.perf_counter()
        if options["in_place"]:
            lines, ok = finance_year_outcome(config=config, log=log)
        else:
            lines, ok = self._in_throwaway(lambda: finance_year_outcome(config=config, log=log), log)
        for line in lines[:-1]:
            self.stdout.write(line)
        self.stdout.write(f"wall time including database setup: {time.perf_counter() - t0:.1f} s")
        self.stdout.write(lines[-1])
        if not ok:
            raise CommandError("the financing year does not reconcile (see above)")

    def _throwaway(self, *, config: SimConfig, plots_dir: Path | None, log: Any) -> Any:
        return self._in_throwaway(lambda: simulation_run(config=config, plots_dir=plots_dir, log=log), log)

    def _in_throwaway(self, run: Callable[[], T], log: Any) -> T:
        old_name = connection.settings_dict["NAME"]
        test = connection.settings_dict.setdefault("TEST", {})
        saved = dict(test)
        test["NAME"] = None if connection.vendor == "sqlite" else f"{old_name}_simulate"
        log(f"creating a throwaway {connection.vendor} database for the simulation…")
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            return run()
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
            test.clear()
            test.update(saved)
