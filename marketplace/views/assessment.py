"""Provider portal: fleet assessments (list, new from a CSV upload or pasted lines, the report page).

Thin: check the role, parse the form, call the assessment service or selectors, render.
"""

from decimal import Decimal
from html import escape
from typing import Any

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from common.charts import bar_chart_svg
from common.errors import DomainError, NotFound, PayloadTooLarge
from common.numbers import DecimalFormField
from marketplace.models import Tier
from marketplace.selectors.assessment import fleet_assessment_get, fleet_assessment_list
from marketplace.services.assessment import (
    DEFAULT_UTILISATION,
    MAX_COUNT_PER_LINE,
    MAX_LINES,
    fleet_assess,
    max_upload_bytes,
    parse_fleet_csv,
    parse_fleet_text,
    request_body_size_check,
    upload_size_check,
)
from marketplace.views.portal import _provider, provider_required

TIER_COLORS = {
    Tier.TRAINING.value: "#1a7f37",
    Tier.FINE_TUNING.value: "#2da44e",
    Tier.INFERENCE.value: "#bf8700",
    Tier.UNSUITABLE.value: "#cf222e",
    "unmatched": "#8c959f",
}
TIER_LABELS = {**{tier.value: str(tier.label) for tier in Tier}, "unmatched": "Unknown model"}


class FleetAssessmentForm(forms.Form):
    file = forms.FileField(
        required=False,
        label="Upload a CSV",
        help_text=(
            "One line per GPU model: the model, then the count (e.g. RTX 3090,12), separated by a comma, "
            "semicolon or tab; a header line is optional."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
    )
    text = forms.CharField(
        required=False,
        label="…or paste your fleet",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 50, "placeholder": "RX580 8GB,400\nGTX 1070,300\n3090,60"}),
        help_text=f"Up to {MAX_LINES:,} lines and {MAX_COUNT_PER_LINE:,} GPUs per line; names as you write them.",
    )
    utilisation_pct = DecimalFormField(
        label="Expected utilisation (%)",
        min_value=Decimal(0),
        max_value=Decimal(100),
        decimal_places=1,
        initial=DEFAULT_UTILISATION * 100,
        help_text="Share of the month your GPUs would be rented; earnings scale with it.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        has_file, has_text = bool(cleaned.get("file")), bool((cleaned.get("text") or "").strip())
        if has_file and has_text:
            raise forms.ValidationError("Upload a file or paste lines, not both.")
        if not has_file and not has_text:
            raise forms.ValidationError("Upload a CSV file or paste your fleet as `model,count` lines.")
        return cleaned


def _form_page(
    request: HttpRequest, form: FleetAssessmentForm, *, status: int = 200, error: str | None = None
) -> HttpResponse:
    return render(
        request,
        "provider/assessment_new.html",
        {"form": form, "error": error, "max_upload_bytes": max_upload_bytes()},
        status=status,
    )


@require_GET
@provider_required
def assessment_list(request: HttpRequest) -> HttpResponse:
    assessments = list(fleet_assessment_list(provider=_provider(request))[:100])
    rows = [{"assessment": a, "share_pct": f"{a.qualifying_share * 100:.1f}%"} for a in assessments]
    return render(
        request,
        "provider/assessment_list.html",
        {"rows": rows, "form": FleetAssessmentForm(), "max_upload_bytes": max_upload_bytes()},
    )


@csrf_exempt  # CSRF is checked by _assessment_create, after the size check (the CSRF check parses the body)
@require_http_methods(["GET", "POST"])
@provider_required
def assessment_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _form_page(request, FleetAssessmentForm())
    try:
        request_body_size_check(content_length=request.META.get("CONTENT_LENGTH"))
    except PayloadTooLarge as exc:
        return _form_page(request, FleetAssessmentForm(), status=exc.status_code, error=exc.message)
    return _assessment_create(request)


@csrf_protect
def _assessment_create(request: HttpRequest) -> HttpResponse:
    form = FleetAssessmentForm(request.POST, request.FILES)
    if not form.is_valid():
        return _form_page(request, form, status=400)
    try:
        upload = form.cleaned_data.get("file")
        if upload is not None:
            upload_size_check(size=upload.size)
            lines = parse_fleet_csv(data=upload.read(max_upload_bytes() + 1))
        else:
            lines = parse_fleet_text(text=form.cleaned_data["text"])
        assessment = fleet_assess(
            provider=_provider(request), lines=lines, utilisation=form.cleaned_data["utilisation_pct"] / 100
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _form_page(request, form, status=exc.status_code)
    return redirect("provider:assessment-detail", assessment_id=assessment.pk)


def _tier_chart(report: dict[str, Any], *, width: int = 540) -> str:
    """Horizontal bars of GPUs per tier, labelled with the count and its share of the fleet."""
    tiers = [tier for tier in (*Tier.values, "unmatched") if report["tiers"].get(tier)]
    total = report["total_gpus"] or 1
    peak = max((report["tiers"][tier] for tier in tiers), default=1) or 1
    row, left, right = 28, 120, 130
    height = 34 + row * len(tiers)
    title = "GPUs by AI tier"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{title}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<title>{title}</title><text x="0" y="16" font-weight="bold" font-size="13">{title}</text>',
    ]
    for i, tier in enumerate(tiers):
        count = report["tiers"][tier]
        y = 26 + i * row
        bar = max(1.0, (width - left - right) * count / peak)
        label = escape(TIER_LABELS[tier])
        parts.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{label}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{bar:.1f}" height="{row - 8}" fill="{TIER_COLORS[tier]}" rx="2"/>'
        )
        parts.append(f'<text x="{left + bar + 6:.1f}" y="{y + 16}">{count:,} ({count / total:.1%})</text>')
    parts.append("</svg>")
    return "".join(parts)


def _earnings_chart(report: dict[str, Any]) -> str | None:
    earning = [m for m in report["models"] if Decimal(m["monthly_earnings_total"]) > 0]
    if not earning:
        return None
    return bar_chart_svg(
        labels=[m["name"] for m in earning],
        values=[float(Decimal(m["monthly_earnings_total"])) for m in earning],  # display only
        title="Expected monthly earnings per model (USD)",
        width=540,
        colors=[TIER_COLORS[m["tier"]] for m in earning],
    )


@require_GET
@provider_required
def assessment_detail(request: HttpRequest, assessment_id: int) -> HttpResponse:
    try:
        assessment = fleet_assessment_get(provider=_provider(request), assessment_id=assessment_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    report = dict(assessment.report)
    report["lines"] = [{**line, "tier_label": TIER_LABELS[line["tier"]]} for line in report["lines"]]
    path = dict(report["upgrade_path"])
    path["options"] = [{**option, "tier_label": TIER_LABELS[option["tier"]]} for option in path["options"]]
    report["upgrade_path"] = path
    earnings_chart = _earnings_chart(report)
    context = {
        "assessment": assessment,
        "report": report,
        "share_pct": f"{report['qualifying_share'] * 100:.1f}%",
        "utilisation_pct": f"{Decimal(report['utilisation']) * 100:.0f}%",
        "fee_pct": f"{Decimal(report['platform_fee_rate']) * 100:.0f}%",
        "tier_chart": mark_safe(_tier_chart(report)),  # noqa: S308 — built from escaped values by common/charts.py
        "earnings_chart": mark_safe(earnings_chart) if earnings_chart else None,  # noqa: S308
    }
    return render(request, "provider/assessment_detail.html", context)
