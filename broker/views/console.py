"""Admin matching console (/console/, staff only): dashboard with the queue, supply, match rounds,
matching controls. Jobs are in console_jobs.py, nodes in console_nodes.py.

Thin: check staff, parse the form, call one service or selector, render. Anonymous users are sent
to the login page; a logged-in user who is not staff gets 403 on every page and every action
(the staff check runs before the HTTP-method check, so a GET of an action is a 403 too).
Live parts (queue, supply, rounds) are partial templates polled with htmx.
"""

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST

from broker.models import MatchRound
from broker.selectors.console import (
    Supply,
    matching_status,
    queue_counts,
    queue_list,
    reasons_histogram,
    round_get,
    rounds_recent,
    supply_by_tier_region,
)
from broker.services.console import match_round_now, matching_pause
from broker.views.console_forms import QueueFilterForm, ReasonForm
from common.charts import bar_chart_svg
from common.decorators import role_required
from common.errors import NotFound

POLL_SECONDS = 5
ROUNDS_SHOWN = 20


staff_required = role_required(
    allowed=lambda user: user.is_active and user.is_staff, message="The matching console is for staff only."
)


def not_found(exc: NotFound) -> Http404:
    return Http404(exc.message)


def _svg(svg: str) -> SafeString:
    return mark_safe(svg)  # noqa: S308 — common/charts.py escapes every label and title


# --------------------------------------------------------------------------- charts


def supply_charts(supply: Supply) -> dict[str, SafeString | None]:
    if not supply.rows:
        return {"utilisation_chart": None, "free_chart": None}
    labels = [f"{row.tier_label} · {row.region}" for row in supply.rows]
    return {
        "utilisation_chart": _svg(
            bar_chart_svg(
                labels=labels,
                values=[row.utilisation * 100 for row in supply.rows],
                title="GPU utilisation by tier and region",
                unit=" %",
            )
        ),
        "free_chart": _svg(
            bar_chart_svg(
                labels=labels,
                values=[float(row.free) for row in supply.rows],
                title="GPUs free to lease now",
                unit=" GPUs",
                colors=["#2e7d32"] * len(labels),
            )
        ),
    }


def reasons_chart(histogram: list[tuple[str, int, str]], title: str) -> SafeString | None:
    if not histogram:
        return None
    return _svg(
        bar_chart_svg(
            labels=[code for code, _, _ in histogram],
            values=[float(n) for _, n, _ in histogram],
            title=title,
            unit=" jobs",
            colors=["#b26a00"] * len(histogram),
        )
    )


def phases_chart(rnd: MatchRound) -> SafeString:
    return _svg(
        bar_chart_svg(
            labels=["snapshot", "engine", "commit", "total"],
            values=[rnd.snapshot_ms, rnd.engine_ms, rnd.commit_ms, rnd.total_ms],
            title=f"Round {rnd.pk}: time by phase",
            unit=" ms",
        )
    )


# --------------------------------------------------------------------------- dashboard and queue


def _queue_context(request: HttpRequest) -> dict[str, Any]:
    form = QueueFilterForm(request.GET or None)
    return {
        "filter_form": form,
        "rows": queue_list(filters=form.filters()),
        "query": request.GET.urlencode(),
        "poll_seconds": POLL_SECONDS,
    }


@staff_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """The queue with filters and age, the matching switch and "run a round now", supply totals."""
    supply = supply_by_tier_region()
    context = {
        **_queue_context(request),
        "counts": queue_counts(),
        "supply": supply,
        **matching_status(),
    }
    return render(request, "console/dashboard.html", context)


@staff_required
@require_GET
def queue_rows(request: HttpRequest) -> HttpResponse:
    """The queue table alone (htmx polling target), with the same filters as the page."""
    return render(request, "console/_queue.html", _queue_context(request))


@staff_required
@require_GET
def status_partial(request: HttpRequest) -> HttpResponse:
    """Matching switch state, job counts and the last round (htmx polling target)."""
    return render(
        request,
        "console/_status.html",
        {"counts": queue_counts(), "poll_seconds": POLL_SECONDS, **matching_status()},
    )


# --------------------------------------------------------------------------- supply


def _supply_context() -> dict[str, Any]:
    supply = supply_by_tier_region()
    return {"supply": supply, **supply_charts(supply), "poll_seconds": POLL_SECONDS}


@staff_required
@require_GET
def supply(request: HttpRequest) -> HttpResponse:
    return render(request, "console/supply.html", _supply_context())


@staff_required
@require_GET
def supply_partial(request: HttpRequest) -> HttpResponse:
    return render(request, "console/_supply.html", _supply_context())


# --------------------------------------------------------------------------- rounds


def _rounds_context() -> dict[str, Any]:
    rounds = rounds_recent(limit=ROUNDS_SHOWN)
    latest = rounds[0] if rounds else None
    histogram = reasons_histogram(rounds=[latest]) if latest else []
    return {
        "rounds": rounds,
        "latest": latest,
        "histogram": histogram,
        "reasons_chart": reasons_chart(histogram, f"Why jobs did not place in round {latest.pk}") if latest else None,
        "phases_chart": phases_chart(latest) if latest else None,
        "poll_seconds": POLL_SECONDS,
    }


@staff_required
@require_GET
def rounds(request: HttpRequest) -> HttpResponse:
    return render(request, "console/rounds.html", {**_rounds_context(), **matching_status()})


@staff_required
@require_GET
def rounds_partial(request: HttpRequest) -> HttpResponse:
    return render(request, "console/_rounds.html", _rounds_context())


@staff_required
@require_GET
def round_detail(request: HttpRequest, round_id: int) -> HttpResponse:
    try:
        rnd = round_get(round_id=round_id)
    except NotFound as exc:
        raise not_found(exc) from exc
    histogram = reasons_histogram(rounds=[rnd])
    return render(
        request,
        "console/round_detail.html",
        {
            "round": rnd,
            "histogram": histogram,
            "reasons_chart": reasons_chart(histogram, f"Why jobs did not place in round {rnd.pk}"),
            "phases_chart": phases_chart(rnd),
            "phases": sorted((rnd.phases or {}).items()),
        },
    )


# --------------------------------------------------------------------------- matching controls


def _back(request: HttpRequest) -> HttpResponse:
    nxt = request.POST.get("next", "")
    if nxt.startswith("/console/") and "//" not in nxt:
        return redirect(nxt)
    return redirect("console:dashboard")


@staff_required
@require_POST
def matching_pause_view(request: HttpRequest) -> HttpResponse:
    form = ReasonForm(request.POST)
    matching_pause(by=request.user, paused=True, reason=form.data.get("reason", "")[:500])
    messages.success(request, "Matching paused: no round places jobs until it is resumed.")
    return _back(request)


@staff_required
@require_POST
def matching_resume_view(request: HttpRequest) -> HttpResponse:
    form = ReasonForm(request.POST)
    matching_pause(by=request.user, paused=False, reason=form.data.get("reason", "")[:500])
    messages.success(request, "Matching resumed.")
    return _back(request)


@staff_required
@require_POST
def round_run(request: HttpRequest) -> HttpResponse:
    """Run one round now (the Celery task's service) and show what it did."""
    rnd = match_round_now(by=request.user)
    if rnd.pk is None:
        messages.error(request, f"No round ran: {rnd.note}.")
        return _back(request)
    messages.success(
        request,
        f"Round {rnd.pk}: placed {rnd.placed} of {rnd.jobs_considered} pending job(s) "
        f"on {rnd.nodes_considered} node(s) in {rnd.total_ms:.0f} ms.",
    )
    if request.POST.get("next"):
        return _back(request)
    return redirect("console:round_detail", round_id=rnd.pk)
