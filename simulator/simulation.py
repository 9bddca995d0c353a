"""One simulation run and its outcome: `simulation_run` (what `manage.py simulate` and the tests call)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simulator.plots import PlotsUnavailable, plots_write, pyplot
from simulator.report import SimReport, report_build, report_lines
from simulator.run import SimConfig, SimState, Simulation


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
    """Run one simulation in the current database (expected empty) and build its report; with `plots_dir`, also
    write PNG charts there (PlotsUnavailable before anything runs when matplotlib is not installed)."""
    if plots_dir is not None:
        pyplot()  # fail fast, not after the run
    t0 = time.perf_counter()
    state = Simulation(config, log=log).run()
    report = report_build(state=state)
    plots: list[Path] = []
    if plots_dir is not None:
        plots = plots_write(directory=plots_dir, report=report, state=state)
    wall = time.perf_counter() - t0
    return SimOutcome(report, state, report_lines(report=report, state=state, config=config, wall_s=wall), plots, wall)


__all__ = ["PlotsUnavailable", "SimConfig", "SimOutcome", "simulation_run"]
