"""Lenders: signup, capital through the gateway, funding preferences, funding advances (pro rata), reinvesting.

Capital: `lender_capital_commit` records a CapitalCommitment and asks the gateway to collect it; the local
gateway settles at once (gateway_clearing → lender_capital, key `capital:<id>`). With Stripe it is a Checkout
Session (idempotency key `capital:<id>`) and the capital is credited once, when the verified webhook says the
session is paid (services/gateway_events.py; `lender_capital_credit`); staff may confirm an incoming wire
(`lender_capital_confirm`).

Funding: a lender pledges an amount to an advance offered to it (advances open for funding that match its
preferences); pledges never exceed its available capital (capital − open pledges), its per-advance maximum, or
what the advance still needs. When pledges reach the principal the advance is disbursed at once
(services/advances.advance_disburse). Automatic lenders (mode `auto`) fund each newly approved advance
that matches their preferences, pro rata to what each can put in (remainder-last, capped per lender).
"""

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum

from billing.gateways import get_gateway
from billing.models import AccountKind
from billing.services.ledger import account_get, ledger_transfer
from common.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from common.money import MICROS, format_usd
from financing.models import (
    Advance,
    AdvanceEvent,
    AdvanceFunding,
    AdvanceStatus,
    CapitalCommitment,
    CapitalCommitmentStatus,
    LenderFundingMode,
    LenderPreference,
)
from financing.selectors.lenders import advances_offered_to_lender, funding_mode_auto_lenders, lender_balances
from financing.services.advance_notify import advance_notify
from marketplace.models import Lender, Tier

MAX_COMMITMENT_MICROS = 10_000_000 * MICROS
AI_TIERS = [Tier.TRAINING, Tier.FINE_TUNING, Tier.INFERENCE]


def lender_signup(*, username: str, email: str, password: str, name: str) -> User:
    username, name = username.strip(), name.strip()
    if not username or not name or len(password) < 8:
        raise ValidationFailed("username, name and a password of at least 8 characters are required")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"the username {username!r} is taken")
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email.strip(), password=password)
        Lender.objects.create(user=user, name=name[:200])
        LenderPreference.objects.create(lender=user)
        return user


def _require_lender(user: User) -> None:
    if not hasattr(user, "lender"):
        raise PermissionDenied("Only lender accounts may do this.")


def lender_preference_set(
    *,
    lender_user: User,
    mode: str,
    max_per_advance_micros: int,
    tiers: list[str],
    max_payoff_months: int,
) -> LenderPreference:
    _require_lender(lender_user)
    if mode not in LenderFundingMode.values:
        raise ValidationFailed(f"mode: one of {', '.join(LenderFundingMode.values)}")
    bad = [t for t in tiers if t not in AI_TIERS]
    if bad:
        raise ValidationFailed(f"tiers: unknown or not AI-grade: {', '.join(bad)}")
    if max_per_advance_micros < 0 or not 1 <= max_payoff_months <= 60:
        raise ValidationFailed("max_per_advance must be ≥ 0 and max_payoff_months between 1 and 60")
    pref, _ = LenderPreference.objects.update_or_create(
        lender=lender_user,
        defaults={
            "mode": mode,
            "max_per_advance_micros": max_per_advance_micros,
            "tiers": sorted(set(tiers)),
            "max_payoff_months": max_payoff_months,
        },
    )
    return pref


def _credit_capital(commitment: CapitalCommitment, ref: str) -> CapitalCommitment:
    txn = ledger_transfer(
        key=f"capital:{commitment.pk}",
        kind="lender_capital",
        legs=[
            (account_get(kind=AccountKind.GATEWAY_CLEARING), -commitment.amount_micros),
            (account_get(kind=AccountKind.LENDER_CAPITAL, user=commitment.lender), commitment.amount_micros),
        ],
        memo=f"Capital commitment {commitment.pk} via {commitment.gateway}",
        metadata={"capital_commitment_id": commitment.pk},
    )
    commitment.status = CapitalCommitmentStatus.SUCCEEDED
    commitment.gateway_ref = ref
    commitment.ledger_transaction = txn
    commitment.save(update_fields=["status", "gateway_ref", "ledger_transaction"])
    return commitment


def lender_capital_commit(*, lender_user: User, amount_micros: int) -> CapitalCommitment:
    """Commit capital through the gateway (local: credited at once)."""
    _require_lender(lender_user)
    if amount_micros <= 0 or amount_micros > MAX_COMMITMENT_MICROS or amount_micros % 10_000:
        raise ValidationFailed(
            f"amount: whole cents, more than $0 and at most {format_usd(micros=MAX_COMMITMENT_MICROS)}",
            details={"amount": ["Out of range."]},
        )
    gateway = get_gateway()
    with transaction.atomic():
        commitment = CapitalCommitment.objects.create(
            lender=lender_user, amount_micros=amount_micros, gateway=gateway.name
        )
        checkout = getattr(gateway, "create_checkout", None)
        if checkout is None:  # the local gateway: the money is in at once
            return _credit_capital(commitment, f"local-capital-{commitment.pk}")
        session = checkout(
            amount_micros=amount_micros,
            key=f"capital:{commitment.pk}",
            product="RigShift lender capital",
            metadata={"capital_commitment_id": str(commitment.pk), "user_id": str(lender_user.pk)},
            return_path="/lender/",
        )
        commitment.gateway_ref, commitment.checkout_url = session.ref, session.url
        commitment.save(update_fields=["gateway_ref", "checkout_url"])
        return commitment  # credited by the verified webhook (services/gateway_events.py)


def lender_capital_credit(*, commitment_id: int, ref: str) -> CapitalCommitment:
    """The gateway says the capital is paid: credit it once (a redelivered webhook changes nothing)."""
    with transaction.atomic():
        c = CapitalCommitment.objects.select_for_update(no_key=True).filter(pk=commitment_id).first()
        if c is None:
            raise NotFound(f"No capital commitment {commitment_id}.")
        if c.status == CapitalCommitmentStatus.SUCCEEDED:
            return c
        return _credit_capital(c, ref)


def lender_capital_fail(*, commitment_id: int) -> CapitalCommitment | None:
    c = CapitalCommitment.objects.filter(pk=commitment_id, status=CapitalCommitmentStatus.PENDING).first()
    if c is not None:
        c.status = CapitalCommitmentStatus.FAILED
        c.save(update_fields=["status"])
    return c


def lender_capital_confirm(*, staff_user: User, commitment_id: int, ref: str) -> CapitalCommitment:
    if not staff_user.is_staff:
        raise PermissionDenied("Staff only.")
    with transaction.atomic():
        c = CapitalCommitment.objects.select_for_update(no_key=True).filter(pk=commitment_id).first()
        if c is None:
            raise NotFound(f"No capital commitment {commitment_id}.")
        if c.status == CapitalCommitmentStatus.SUCCEEDED:
            return c
        return _credit_capital(c, ref)


def lender_receipts_reinvest(*, lender_user: User) -> int:
    """Move the lender's received repayments back into its capital (to fund more). Returns the amount."""
    _require_lender(lender_user)
    rec = account_get(kind=AccountKind.LENDER_RECEIVABLE, user=lender_user)
    rec.refresh_from_db(fields=["balance"])
    amount = rec.balance
    if amount <= 0:
        raise Conflict("nothing received to reinvest")
    ledger_transfer(
        key=f"reinvest:{lender_user.pk}:{rec.entries.count()}",
        kind="lender_reinvest",
        legs=[(rec, -amount), (account_get(kind=AccountKind.LENDER_CAPITAL, user=lender_user), amount)],
        memo="Repayments reinvested as capital",
    )
    return amount


def _pledge(*, advance: Advance, lender_user: User, amount_micros: int) -> AdvanceFunding:
    funding, created = AdvanceFunding.objects.get_or_create(
        advance=advance, lender=lender_user, defaults={"amount_micros": amount_micros}
    )
    if not created:
        funding.amount_micros += amount_micros
        funding.save(update_fields=["amount_micros"])
    advance.funded_micros += amount_micros
    advance.save(update_fields=["funded_micros"])
    AdvanceEvent.objects.create(
        advance=advance,
        kind="funded",
        message=f"{lender_user.lender.name} funded {format_usd(micros=amount_micros)}.",
        actor=lender_user,
        created_at=advance.approved_at if advance.approved_at else funding.created_at,
    )
    if advance.funded_micros == advance.principal_micros:
        advance_notify(
            advance=advance, step="funded", message=f"Fully funded: {format_usd(micros=advance.principal_micros)}."
        )
    return funding


def _room(*, lender_user: User, advance: Advance) -> int:
    pref = LenderPreference.objects.filter(lender=lender_user).first()
    available = lender_balances(lender_user=lender_user)["available"]
    already = (
        AdvanceFunding.objects.filter(advance=advance, lender=lender_user).aggregate(s=Sum("amount_micros"))["s"] or 0
    )
    cap = pref.max_per_advance_micros - already if pref and pref.max_per_advance_micros else available
    return max(0, min(available, cap, advance.principal_micros - advance.funded_micros))


def advance_fund(*, lender_user: User, advance_id: int, amount_micros: int | None = None) -> Advance:
    """Pledge `amount_micros` (default: as much as allowed) to an advance offered to this lender."""
    _require_lender(lender_user)
    with transaction.atomic():
        advance = Advance.objects.select_for_update(no_key=True).filter(pk=advance_id).first()
        if advance is None or not (
            advances_offered_to_lender(lender_user=lender_user).filter(pk=advance_id).exists()
            or AdvanceFunding.objects.filter(advance_id=advance_id, lender=lender_user).exists()
        ):
            raise NotFound(f"No advance {advance_id} is offered to you.")
        if advance.status != AdvanceStatus.FUNDING:
            raise Conflict(f"advance {advance_id} is {advance.status}; it is not open for funding")
        room = _room(lender_user=lender_user, advance=advance)
        amount = room if amount_micros is None else amount_micros
        if amount <= 0:
            raise Conflict("you have no available capital (or allowance) left for this advance")
        if amount > room:
            raise ValidationFailed(
                f"amount: at most {format_usd(micros=room)} (your available capital, your per-advance maximum "
                "and what the advance still needs)",
                details={"amount": ["Too much."]},
            )
        _pledge(advance=advance, lender_user=lender_user, amount_micros=amount)
        if advance.funded_micros == advance.principal_micros:
            from financing.services.advances import advance_disburse_or_retry

            return advance_disburse_or_retry(advance_id=advance.pk)
        return advance


def advance_fund_auto(*, advance_id: int) -> Advance:
    """Automatic lenders whose preferences match fund the advance pro rata to their room (remainder-last)."""
    with transaction.atomic():
        advance = Advance.objects.select_for_update(no_key=True).get(pk=advance_id)
        if advance.status != AdvanceStatus.FUNDING:
            return advance
        rooms: list[tuple[User, int]] = []
        for pref in funding_mode_auto_lenders().select_related("lender"):
            user = pref.lender
            if not advances_offered_to_lender(lender_user=user).filter(pk=advance.pk).exists():
                continue
            room = _room(lender_user=user, advance=advance)
            if room > 0:
                rooms.append((user, room))
        need = advance.principal_micros - advance.funded_micros
        total = sum(r for _, r in rooms)
        if not rooms or need <= 0:
            return advance
        take = min(need, total)
        shares = [take * r // total for _, r in rooms]
        left = take - sum(shares)
        for i, (_, r) in enumerate(rooms):  # hand out the flooring remainder, never above a lender's room
            extra = min(left, r - shares[i])
            shares[i] += extra
            left -= extra
        for (user, _), amount in zip(rooms, shares, strict=True):
            if amount > 0:
                _pledge(advance=advance, lender_user=user, amount_micros=amount)
        if advance.funded_micros == advance.principal_micros:
            from financing.services.advances import advance_disburse_or_retry

            return advance_disburse_or_retry(advance_id=advance.pk)
        return advance
