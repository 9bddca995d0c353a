"""PNG charts of a simulation (matplotlib, Agg backend: no display needed).

matplotlib is an optional extra (requirements-plots.txt), not a runtime dependency: it is imported here, and
this module only when charts are asked for (`manage.py simulate --plots DIR`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.report import SimReport
from simulator.run import AI_TIERS, SimState

DPI = 80
WINDOW_S = 30 * 60
PLOTS_MISSING = (
    "--plots needs matplotlib, an optional extra that is not installed: "
    "pip install -r requirements-plots.txt (make run and make test install it)"
)


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend; PlotsUnavailable (saying how to install it) when it is missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotsUnavailable(PLOTS_MISSING) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _step(state: SimState) -> float:
    return state.samples[1][0] - state.samples[0][0] if len(state.samples) > 1 else 60.0


def plots_write(*, directory: Path, report: SimReport, state: SimState) -> list[Path]:
    plt = pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    return [
        _utilisation(plt, directory / "utilisation.png", state=state),
        _waits(plt, directory / "waits.png", report=report),
        _revenue(plt, directory / "revenue.png", report=report),
    ]


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _utilisation(plt: Any, path: Path, *, state: SimState) -> Path:
    fig, ax = plt.subplots(figsize=(8, 3.6))
    hours = [t / 3600 for t, _, _ in state.samples]
    window = max(1, round(WINDOW_S / max(1.0, _step(state))))
    for tier in AI_TIERS:
        if not any(cap.get(tier) for _, _, cap in state.samples):
            continue
        held = [h.get(tier, 0) for _, h, _ in state.samples]
        cap = [c.get(tier, 0) for _, _, c in state.samples]
        series = []
        for i in range(len(held)):  # GPU-time held / GPU-time listed over the trailing window
            lo = max(0, i - window + 1)
            total = sum(cap[lo : i + 1])
            series.append(sum(held[lo : i + 1]) / total if total else 0.0)
        ax.plot(hours, series, label=tier.replace("_", "-"), linewidth=1.4)
    all_series = []
    for i in range(len(state.samples)):
        lo = max(0, i - window + 1)
        chunk = state.samples[lo : i + 1]
        total = sum(sum(c.get(t, 0) for t in AI_TIERS) for _, _, c in chunk)
        all_series.append(sum(sum(h.get(t, 0) for t in AI_TIERS) for _, h, _ in chunk) / total if total else 0.0)
    ax.plot(hours, all_series, label="all AI-grade", color="black", linewidth=2.0)
    ax.set_xlabel("simulated hour")
    ax.set_ylabel("GPUs held / listed")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"GPU utilisation by tier ({WINDOW_S // 60}-minute trailing window)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def _waits(plt: Any, path: Path, *, report: SimReport) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    waits = [max(w, 1.0) / 60 for w in report.waits_s]
    if waits:
        ax.hist(waits, bins=30, color="#4a7bd0")
    ax.set_xlabel("wait to placement (minutes; instant placements shown at 1 s)")
    ax.set_ylabel("jobs")
    ax.set_title(f"Wait to placement (median {report.median_wait_s:.0f} s, p95 {report.p95_wait_s:.0f} s)")
    return _save(plt, fig, path)


def _revenue(plt: Any, path: Path, *, report: SimReport) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    parts = [
        ("provider share", report.provider_share - report.financing_repaid),
        ("lender repayments", report.financing_repaid),
        ("platform fees", report.fees),
        ("reserve", report.reserve),
    ]
    labels = [name for name, _ in parts]
    values = [v / 1e6 for _, v in parts]
    ax.barh(labels, values, color=["#3a9d5d", "#8e6cc0", "#d08a3a", "#888888"])
    for i, v in enumerate(values):
        ax.text(v, i, f" ${v:,.2f}", va="center", fontsize=8)
    ax.set_xlabel("USD")
    ax.set_title(f"Revenue split (customers charged ${report.charged / 1e6:,.2f})")
    ax.invert_yaxis()
    return _save(plt, fig, path)
