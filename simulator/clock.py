"""Simulated time, and the in-process plumbing the simulator runs the product through.

Time travel: while a simulation runs, `django.utils.timezone.now` is replaced by the simulation clock.
Every service reads the time through `timezone.now()` (models' `auto_now`/`auto_now_add` too), so the
whole product — bookings, leases, heartbeats, uptime, settlement, payouts — sees one consistent
simulated time; services that take `now=` get the same value. Durations measured for timings
(`time.perf_counter`) and cache/lock TTLs stay in real time, which is what they are for.

Celery: tasks run eagerly in this process (`task_always_eager`, errors propagate); the beat schedule of
settings.CELERY_BEAT_SCHEDULE is replayed in simulated time by `SimBeat`.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from django.conf import settings
from django.utils import timezone


class SimClock:
    """A settable clock: `clock()` is the simulated datetime, `clock.epoch()` the same in epoch seconds."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.start = start

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now = self.now + timedelta(seconds=seconds)

    @property
    def elapsed_s(self) -> float:
        return (self.now - self.start).total_seconds()


@contextmanager
def simulated_time(clock: SimClock) -> Iterator[SimClock]:
    """Route `django.utils.timezone.now` to `clock` for the duration of the block."""
    with mock.patch.object(timezone, "now", clock):
        yield clock


@contextmanager
def eager_celery() -> Iterator[None]:
    """Run Celery tasks inline (and let their errors propagate) for the duration of the block; the per-task and
    per-lease INFO lines of celery's tracer and the agents (tens of thousands) are silenced."""
    from config.celery import app

    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    quiet = [logging.getLogger(name) for name in ("celery.app.trace", "rigshift_agent")]
    levels = [logger.level for logger in quiet]
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


class SimBeat:
    """Celery beat in simulated time: each entry of CELERY_BEAT_SCHEDULE runs when its period (at least
    one tick) has passed, eagerly, in the order of the schedule."""

    def __init__(self, *, tick_s: int, start: datetime, schedule: dict[str, Any] | None = None) -> None:
        from config.celery import app

        self.app = app
        self.entries: list[tuple[str, str, float, list[Any]]] = []
        entries: dict[str, Any] = schedule if schedule is not None else settings.CELERY_BEAT_SCHEDULE
        for name, entry in entries.items():
            period = float(entry["schedule"])
            args = list(entry.get("args") or [])
            self.entries.append((name, str(entry["task"]), max(period, float(tick_s)), args))
        self.next_at = {name: start for name, *_ in self.entries}
        self.runs: dict[str, int] = {name: 0 for name, *_ in self.entries}
        self.cpu_s: dict[str, float] = {name: 0.0 for name, *_ in self.entries}

    def run_due(self, now: datetime, *, skip: frozenset[str] = frozenset()) -> None:
        """Run the entries that are due, except those named in `skip` (nothing to do: they stay due)."""
        for name, task_name, period, args in self.entries:
            if now < self.next_at[name] or task_name in skip:
                continue
            module, _, _ = task_name.rpartition(".")
            importlib.import_module(module)  # registers the task (autodiscovery is lazy outside a worker)
            t = time.process_time()
            self.app.tasks[task_name].delay(*args)
            self.cpu_s[name] += time.process_time() - t
            self.runs[name] += 1
            self.next_at[name] = now + timedelta(seconds=period)
