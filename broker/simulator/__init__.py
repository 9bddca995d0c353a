"""The market simulator behind `python manage.py simulate`: many simulated providers, agents and customers driven
through the real services, agent API views, Celery tasks, ledger and settlement, in simulated time.

    clock.py    simulated time (timezone.now patched), eager Celery, beat replayed in simulated time
    market.py   fleets, demand, and the job mix of the Alibaba GPU trace
    agents.py   the real rigshift_agent Runner, talking to the agent API views in-process
    run.py      the tick loop
    report.py   the reconciled report, read back from the database
    plots.py    PNG charts
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.simulator.report import SimReport, report_build, report_lines
from broker.simulator.run import SimConfig, SimState, Simulation


@dataclass
class SimOutcome:
    report: SimReport
    state: SimState
    lines: list[str]
    plots: list[Path]
    wall_s: float


def simulation_run(
    *, config: SimConfig, plots_dir: Path | None = None, log: Callable[[str], None] = lambda s: None
) -> SimOutcome:
    """Run one simulation in the current database (expected empty) and build its report."""
    t0 = time.perf_counter()
    state = Simulation(config, log=log).run()
    report = report_build(state=state)
    plots: list[Path] = []
    if plots_dir is not None:
        from broker.simulator.plots import plots_write

        plots = plots_write(directory=plots_dir, report=report, state=state)
    wall = time.perf_counter() - t0
    return SimOutcome(report, state, report_lines(report=report, state=state, config=config, wall_s=wall), plots, wall)


__all__ = ["SimConfig", "SimOutcome", "simulation_run"]
