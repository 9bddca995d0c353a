"""Lender reads: preferences, the advances offered to and funded by a lender, balances and the portfolio."""

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet, Sum

from billing.models import Account, AccountKind
from financing.models import (
    Advance,
    AdvanceFunding,
    AdvanceRepayment,
    AdvanceStatus,
    LenderFundingMode,
    LenderPreference,
)


def lender_preference_get(*, lender_user: User) -> LenderPreference:
    pref = LenderPreference.objects.filter(lender=lender_user).first()
    return pref or LenderPreference(lender=lender_user)


def advances_offered_to_lender(*, lender_user: User) -> QuerySet[Advance]:
    """Advances open for funding that match the lender's preferences (tier, size cap, payoff time)."""
    pref = lender_preference_get(lender_user=lender_user)
    qs = Advance.objects.filter(status=AdvanceStatus.FUNDING).select_related("gpu_model", "application")
    if pref.tiers:
        qs = qs.filter(gpu_model__tier__in=pref.tiers)
    if pref.max_payoff_months:
        qs = qs.filter(expected_payoff_months__lte=pref.max_payoff_months)
    return qs.exclude(fundings__lender=lender_user).order_by("approved_at", "pk")


def advances_funded_by_lender(*, lender_user: User) -> QuerySet[Advance]:
    return (
        Advance.objects.filter(fundings__lender=lender_user)
        .select_related("gpu_model", "application")
        .distinct()
        .order_by("-approved_at", "-pk")
    )


def lender_balances(*, lender_user: User) -> dict[str, int]:
    cap = Account.objects.filter(kind=AccountKind.LENDER_CAPITAL, owner=lender_user).values_list("balance", flat=True)
    rec = Account.objects.filter(kind=AccountKind.LENDER_RECEIVABLE, owner=lender_user).values_list(
        "balance", flat=True
    )
    pledged = (
        AdvanceFunding.objects.filter(lender=lender_user, advance__status=AdvanceStatus.FUNDING).aggregate(
            s=Sum("amount_micros")
        )["s"]
        or 0
    )
    capital = sum(cap)
    return {"capital": capital, "pledged": pledged, "available": capital - pledged, "received": sum(rec)}


def lender_portfolio(*, lender_user: User) -> dict[str, Any]:
    """Funded, repaid, outstanding, written off, realised return, and the expected vs actual repayment curves."""
    fundings = list(
        AdvanceFunding.objects.filter(lender=lender_user)
        .select_related("advance", "advance__gpu_model")
        .order_by("advance__approved_at", "pk")
    )
    funded = repaid = outstanding = written_off = 0
    expected_curve: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    for f in fundings:
        adv = f.advance
        if adv.status == AdvanceStatus.FUNDING:
            continue
        share_due = adv.due_micros * f.amount_micros // adv.principal_micros
        funded += f.amount_micros
        repaid += f.received_micros
        lost = 0
        if adv.status == AdvanceStatus.DEFAULTED:
            lost = max(0, share_due - f.received_micros)
            written_off += lost
        elif adv.status != AdvanceStatus.REPAID:
            outstanding += max(0, share_due - f.received_micros)
        rows.append({"funding": f, "advance": adv, "share_due": share_due, "lost": lost})
        if adv.disbursed_at is not None:
            months = max(1, int(adv.expected_payoff_months.to_integral_value(rounding="ROUND_CEILING")))
            for m in range(1, 25):
                expected_curve[m] = expected_curve.get(m, 0) + min(share_due, share_due * m // months)
    actual_curve: dict[int, int] = {}
    reps = AdvanceRepayment.objects.filter(funding__lender=lender_user).select_related("advance")
    for r in reps:
        if r.advance.disbursed_at is None or r.created_at is None:
            continue
        month = max(1, -(-(r.created_at - r.advance.disbursed_at).days // 30))
        actual_curve[month] = actual_curve.get(month, 0) + r.amount_micros
    cumulative, actual = 0, {}
    for m in range(1, 25):
        cumulative += actual_curve.get(m, 0)
        actual[m] = cumulative
    settled_principal = sum(
        r["funding"].amount_micros
        for r in rows
        if r["advance"].status in (AdvanceStatus.REPAID, AdvanceStatus.DEFAULTED)
    )
    settled_received = sum(
        r["funding"].received_micros
        for r in rows
        if r["advance"].status in (AdvanceStatus.REPAID, AdvanceStatus.DEFAULTED)
    )
    return {
        "rows": rows,
        "funded": funded,
        "repaid": repaid,
        "outstanding": outstanding,
        "written_off": written_off,
        "delinquent": sum(1 for r in rows if r["advance"].status == AdvanceStatus.DELINQUENT),
        "defaulted": sum(1 for r in rows if r["advance"].status == AdvanceStatus.DEFAULTED),
        # Realised return on closed (repaid or defaulted) advances: (received - principal) / principal.
        "realised_gain": settled_received - settled_principal,
        "realised_principal": settled_principal,
        "expected_curve": [expected_curve.get(m, 0) for m in range(1, 25)],
        "actual_curve": [actual[m] for m in range(1, 25)],
    }


def funding_mode_auto_lenders() -> QuerySet[LenderPreference]:
    return LenderPreference.objects.filter(mode=LenderFundingMode.AUTO).order_by("lender_id")
