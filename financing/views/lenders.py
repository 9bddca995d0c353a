"""Lender pages: signup (/lender/signup/) and the portal (/lender/): portfolio, repayment curve, capital,
preferences, advances offered to this lender (fund) and the advances it funded."""

from html import escape

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_http_methods

from billing.views.pages import role_required
from common.errors import DomainError
from common.money import MICROS, format_usd
from financing.models import LenderPayout
from financing.selectors.advances import advance_visible_to
from financing.selectors.lenders import (
    advances_funded_by_lender,
    advances_offered_to_lender,
    lender_balances,
    lender_portfolio,
    lender_preference_get,
)
from financing.selectors.stress import lender_portfolio_stress
from financing.services.lender_payouts import lender_payout_onboard
from financing.services.lenders import (
    AI_TIERS,
    advance_fund,
    lender_capital_commit,
    lender_preference_set,
    lender_receipts_reinvest,
    lender_signup,
)
from financing.views.advances import _advance_context, _micros


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def repayment_curve_svg(*, expected: list[int], actual: list[int], width: int = 640, height: int = 240) -> SafeString:
    """Cumulative expected vs actual repayments by month since disbursement, as an inline SVG line chart."""
    left, right, top, bottom = 80, 20, 30, 30
    peak = max([*expected, *actual, 1])
    months = len(expected)
    span_x, span_y = width - left - right, height - top - bottom

    def points(values: list[int]) -> str:
        return " ".join(
            f"{left + span_x * i / max(months - 1, 1):.1f},{top + span_y * (1 - v / peak):.1f}"
            for i, v in enumerate(values)
        )

    title = "Repayments received: expected vs actual (cumulative, by month)"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + span_y}" x2="{width - right}" y2="{top + span_y}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + span_y}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{escape(format_usd(micros=peak))}</text>',
        f'<text x="{left - 6}" y="{top + span_y}" text-anchor="end">$0</text>',
        f'<text x="{left}" y="{height - 8}">month 1</text>',
        f'<text x="{width - right}" y="{height - 8}" text-anchor="end">month {months}</text>',
        f'<polyline id="curve-expected" fill="none" stroke="#999" stroke-dasharray="4 3" stroke-width="2" '
        f'points="{points(expected)}"><title>expected</title></polyline>',
        f'<polyline id="curve-actual" fill="none" stroke="#1565c0" stroke-width="2" points="{points(actual)}">'
        "<title>actual</title></polyline>",
        f'<text x="{width - right - 150}" y="{top + 12}" fill="#999">- - expected</text>',
        f'<text x="{width - right - 150}" y="{top + 26}" fill="#1565c0">— actual</text>',
        "</svg>",
    ]
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated value is a number or escaped


@require_http_methods(["GET", "POST"])
def lender_signup_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            user = lender_signup(
                username=request.POST.get("username", ""),
                email=request.POST.get("email", ""),
                password=request.POST.get("password", ""),
                name=request.POST.get("name", ""),
            )
        except DomainError as exc:
            messages.error(request, exc.message)
            return render(request, "lender/signup.html", {"form": request.POST}, status=400)
        login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
        messages.success(request, "Welcome. Commit capital and choose what you fund.")
        return redirect("lender-portal")
    return render(request, "lender/signup.html", {"form": {}})


@role_required("lender")
@require_http_methods(["GET"])
def lender_portal(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    portfolio = lender_portfolio(lender_user=user)
    context = {
        "p": portfolio,
        "chart": repayment_curve_svg(expected=portfolio["expected_curve"], actual=portfolio["actual_curve"]),
        "balances": lender_balances(lender_user=user),
        "pref": lender_preference_get(lender_user=user),
        "tiers": AI_TIERS,
        "offered": advances_offered_to_lender(lender_user=user).select_related("application__demand"),
        "funded": advances_funded_by_lender(lender_user=user),
        "stress": lender_portfolio_stress(lender_user=user),
        "payouts": LenderPayout.objects.filter(lender=user).order_by("-created_at")[:10],
    }
    return render(request, "lender/portal.html", context)


@role_required("lender")
@require_http_methods(["POST"])
def lender_payout_account(request: HttpRequest) -> HttpResponse:
    """Set up where repayments are paid out (Stripe: Connect onboarding; local: ready at once)."""
    try:
        url = lender_payout_onboard(lender_user=_user(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("lender-portal")
    if url.startswith("/"):
        messages.success(request, "Payouts are set up.")
    return redirect(url)


@role_required("lender")
@require_http_methods(["POST"])
def lender_action(request: HttpRequest, action: str) -> HttpResponse:
    user = _user(request)
    try:
        if action == "capital":
            amount = _micros(request.POST.get("amount")) or 0
            c = lender_capital_commit(lender_user=user, amount_micros=amount)
            if c.checkout_url:  # Stripe: pay on Checkout; credited by the verified webhook
                return redirect(c.checkout_url)
            messages.success(request, f"Capital commitment of {format_usd(micros=c.amount_micros)}: {c.status}.")
        elif action == "preferences":
            cap = _micros(request.POST.get("max_per_advance"), field="max_per_advance") or 0
            lender_preference_set(
                lender_user=user,
                mode=request.POST.get("mode", ""),
                max_per_advance_micros=cap,
                tiers=request.POST.getlist("tiers"),
                max_payoff_months=int(request.POST.get("max_payoff_months") or 0),
            )
            messages.success(request, "Preferences saved.")
        elif action == "reinvest":
            amount = lender_receipts_reinvest(lender_user=user)
            messages.success(request, f"{format_usd(micros=amount)} moved back to your capital.")
        else:
            raise Http404("unknown action")
    except DomainError as exc:
        messages.error(request, exc.message)
    except ValueError:
        messages.error(request, "max_payoff_months must be a whole number")
    return redirect("lender-portal")


@role_required("lender")
@require_http_methods(["GET", "POST"])
def lender_advance(request: HttpRequest, advance_id: int) -> HttpResponse:
    user = _user(request)
    advance = advance_visible_to(user=user, advance_id=advance_id)
    if advance is None:
        raise Http404("No such advance offered to you.")
    if request.method == "POST":
        try:
            amount = _micros(request.POST.get("amount"))
            advance = advance_fund(lender_user=user, advance_id=advance_id, amount_micros=amount)
            messages.success(request, f"Funded. Advance {advance.pk} is {advance.get_status_display().lower()}.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("lender-advance", advance_id=advance_id)
    context = _advance_context(advance, role="lender")
    context["share"] = advance.fundings.filter(lender=user).first()
    context["min_amount"] = MICROS
    return render(request, "financing/advance.html", context)
