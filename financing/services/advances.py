"""Advances after approval: funding, disbursement, collateral, the repayment waterfall, progress and default.

Ledger movements (every one a balanced `ledger_transfer`, verified by `ledger_check`):
  * disbursement `advance-disburse:<id>`: each funder's lender_capital −share, gateway_clearing +principal (the
    money leaves through the gateway to the provider, or to a hardware vendor, recorded on the advance).
  * withholding: inside each settlement's transaction (billing's settlement.provider_share_split → the withholding
    hook financing/apps.py registers → `advance_withholding_legs`): of the provider share, `withhold_bps` per open
    advance goes to the funders' lender_receivable accounts, never more than what remains due; the rest to the
    provider payable. When principal + fee are repaid the advance is `repaid` and withholding stops by itself.
  * early payoff `advance-payoff:<id>:<repaid before>`: provider_payable → funders' lender_receivable.

Pro rata with the remainder-last rule, on cumulative amounts: after R has been repaid in total, funder i (all but
the last) has received floor(R × share_i / principal) and the last funder R minus the others, so the parts always
add up to R, and at full repayment each funder holds exactly its share of principal + fee.

Minimum-progress policy (checked per advance every PROGRESS_WINDOW_DAYS by the daily `advances_review`):
  * a window whose repayments are below `min_progress_micros` is a shortfall, flagged (an event and an e-mail)
    to the provider, every funder and staff;
  * DELINQUENT_AFTER consecutive shortfalls, or collateral offline longer than COLLATERAL_DELINQUENT_DAYS →
    `delinquent`: the withhold rate rises by DELINQUENT_WITHHOLD_STEP_BPS (capped at MAX_WITHHOLD_BPS, or at
    MAX_CONTRACT_DELINQUENT_BPS for a contract-backed advance whose rate is already higher) on the provider's whole
    share — so earnings of its other nodes repay too;
  * a delinquent advance that meets a window's minimum is cured (back to `active`, base rate);
  * DEFAULT_AFTER consecutive shortfalls, or collateral offline longer than COLLATERAL_DEFAULT_DAYS →
    `defaulted`: what remains due is written off (recorded on the advance as `written_off_micros`; no money
    moves, lenders bear it pro rata), withholding stops, the collateral stays tagged for recovery by staff.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import mail_admins, send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.gateways import get_gateway
from billing.models import Account, AccountKind, LedgerTransaction
from billing.services.ledger import account_get, ledger_transfer
from common.errors import Conflict, NotFound, ValidationFailed
from common.money import format_usd
from financing.models import (
    OPEN_ADVANCE_STATUSES,
    Advance,
    AdvanceEvent,
    AdvanceFunding,
    AdvanceRepayment,
    AdvanceStatus,
    Collateral,
    RepaymentKind,
)
from financing.services.advance_notify import advance_notify

logger = logging.getLogger(__name__)

BPS = 10_000
PROGRESS_WINDOW_DAYS = 60
DELINQUENT_AFTER = 2
DEFAULT_AFTER = 3
COLLATERAL_DELINQUENT_DAYS = 14
COLLATERAL_DEFAULT_DAYS = 45
DELINQUENT_WITHHOLD_STEP_BPS = 1000
MAX_WITHHOLD_BPS = 5000
MAX_CONTRACT_DELINQUENT_BPS = 9000  # a contract-backed advance already withholds more than MAX_WITHHOLD_BPS


def _event(advance: Advance, kind: str, message: str, *, actor: User | None = None, **data: object) -> None:
    AdvanceEvent.objects.create(
        advance=advance, kind=kind, message=message[:500], data=data, actor=actor, created_at=timezone.now()
    )
    advance_notify(advance=advance, step=kind, message=message)


def _notify(advance: Advance, subject: str, body: str) -> None:
    """Flag to the provider, every funder and staff (e-mail on commit; the event is the durable record)."""
    emails = [
        advance.provider.email,
        *User.objects.filter(advance_fundings__advance=advance).values_list("email", flat=True),
    ]
    recipients = sorted({r for r in emails if r})

    def send() -> None:
        try:
            if recipients:
                send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=True)
            mail_admins(subject, body, fail_silently=True)
        except Exception:
            logger.exception("financing notification failed")

    transaction.on_commit(send)


# --- pro rata -------------------------------------------------------------------------------------------------------


def pro_rata_increments(*, fundings: list[AdvanceFunding], principal_micros: int, total_after: int) -> list[int]:
    """What each funding receives so that, after `total_after` repaid in all, the remainder-last rule holds."""
    targets = [total_after * f.amount_micros // principal_micros for f in fundings[:-1]]
    targets.append(total_after - sum(targets))
    return [t - f.received_micros for t, f in zip(targets, fundings, strict=True)]


def _apply_repayment(
    *, advance: Advance, amount: int, kind: RepaymentKind, source_key: str, lease_ref: int | None
) -> dict[int, int]:
    """Record `amount` repaid on `advance` (locked by the caller); returns {lender user id: amount}."""
    fundings = list(AdvanceFunding.objects.select_for_update(no_key=True).filter(advance=advance).order_by("pk"))
    increments = pro_rata_increments(
        fundings=fundings, principal_micros=advance.principal_micros, total_after=advance.repaid_micros + amount
    )
    now = timezone.now()
    per_lender: dict[int, int] = defaultdict(int)
    rows = []
    for f, inc in zip(fundings, increments, strict=True):
        if inc:
            f.received_micros += inc
            f.save(update_fields=["received_micros"])
            per_lender[f.lender_id] += inc
            rows.append(
                AdvanceRepayment(
                    advance=advance,
                    funding=f,
                    kind=kind,
                    source_key=source_key,
                    lease_ref=lease_ref,
                    amount_micros=inc,
                    created_at=now,
                )
            )
    AdvanceRepayment.objects.bulk_create(rows)
    advance.repaid_micros += amount
    fields = ["repaid_micros"]
    if advance.remaining_micros == 0:
        advance.status = AdvanceStatus.REPAID
        advance.closed_at = now
        fields += ["status", "closed_at"]
        _event(advance, "repaid", f"Repaid in full: {format_usd(micros=advance.due_micros)} (principal + fee).")
    advance.save(update_fields=fields)
    return per_lender


def advance_withholding_discard(*, source_keys: list[str]) -> None:
    """Undo withholding planned for settlement transactions that were not written (their ledger batch failed).

    Settlement plans each lease's legs (calling `advance_withholding_legs` through the hook, which records
    repayments) before it writes the ledger batch; when the batch fails (one customer's escrow cannot pay) it calls
    this for the batch's keys and then retries lease by lease. Keys already in the ledger are left alone.
    """
    posted = set(
        LedgerTransaction.objects.filter(idempotency_key__in=source_keys).values_list("idempotency_key", flat=True)
    )
    unposted = [k for k in source_keys if k not in posted]
    for rep in AdvanceRepayment.objects.filter(source_key__in=unposted).order_by("advance_id", "pk"):
        AdvanceFunding.objects.filter(pk=rep.funding_id).update(
            received_micros=F("received_micros") - rep.amount_micros
        )
        adv = Advance.objects.select_for_update(no_key=True).get(pk=rep.advance_id)
        adv.repaid_micros -= rep.amount_micros
        if adv.status == AdvanceStatus.REPAID:
            adv.status, adv.closed_at = AdvanceStatus.ACTIVE, None
            AdvanceEvent.objects.filter(advance=adv, kind="repaid").delete()
        adv.save(update_fields=["repaid_micros", "status", "closed_at"])
        rep.delete()


def advances_lock_for_providers(*, provider_ids: set[int]) -> None:
    """Lock the open advances of these providers (and their fundings) in primary-key order (settlement calls this
    once per batch before withholding, so concurrent settlers take advance locks in one global order)."""
    if not provider_ids:
        return
    advance_ids = list(
        Advance.objects.select_for_update(no_key=True)
        .filter(provider_id__in=provider_ids, status__in=OPEN_ADVANCE_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if advance_ids:
        list(
            AdvanceFunding.objects.select_for_update(no_key=True)
            .filter(advance_id__in=advance_ids)
            .order_by("pk")
            .values("pk")
        )


def advance_withholding_legs(
    *, provider_user: User, amount_micros: int, source_key: str, lease_ref: int | None = None
) -> list[tuple[Account, int]]:
    """The waterfall's provider step: what the provider's open advances withhold of a share of `amount_micros`.

    Billing's settlement calls this through the withholding hook (see financing/apps.py) and credits the rest of
    the share to the provider payable. Returns the legs crediting the funders' lender_receivable accounts, pro
    rata; none without an open advance or without a key. Idempotent per `source_key` (the settlement's ledger
    key): a second call returns the same legs.
    """
    if amount_micros <= 0 or not source_key:
        return []
    if not Advance.objects.filter(provider=provider_user, disbursed_at__isnull=False).exists():
        return []  # one query for every provider that never had an advance
    per_lender: dict[int, int] = defaultdict(int)
    existing = list(AdvanceRepayment.objects.filter(source_key=source_key, advance__provider=provider_user))
    if existing:
        for rep in existing:
            per_lender[rep.funding.lender_id] += rep.amount_micros
    else:
        left = amount_micros
        for advance in (
            Advance.objects.select_for_update(no_key=True)
            .filter(provider=provider_user, status__in=OPEN_ADVANCE_STATUSES)
            .order_by("pk")
        ):
            withhold = min(amount_micros * advance.withhold_bps // BPS, advance.remaining_micros, left)
            if withhold <= 0:
                continue
            left -= withhold
            got = _apply_repayment(
                advance=advance,
                amount=withhold,
                kind=RepaymentKind.WITHHOLDING,
                source_key=source_key,
                lease_ref=lease_ref,
            )
            for lender_id, amt in got.items():
                per_lender[lender_id] += amt
    return [
        (account_get(kind=AccountKind.LENDER_RECEIVABLE, user=User(pk=lender_id)), per_lender[lender_id])
        for lender_id in sorted(per_lender)
    ]


# --- disbursement and collateral -------------------------------------------------------------------------------------


def _disbursement_ref(advance: Advance) -> str:
    """Move the principal out through the gateway: a Connect transfer to the provider's connected account (Stripe,
    idempotency key `advance-disburse:<id>`, so a retry never pays twice), a recorded payment to the hardware vendor
    (staff wire it against this reference), or at once (local gateway). Raises Conflict when the gateway refuses."""
    from marketplace.models import Provider

    key = f"advance-disburse:{advance.pk}"
    if advance.disburse_to == "vendor":
        return f"vendor-payment:{advance.pk}:{advance.vendor_name}"[:200]
    gateway = get_gateway()
    send = getattr(gateway, "send_transfer", None)
    if send is None:
        return f"local-disburse-{advance.pk}"
    destination = Provider.objects.filter(user=advance.provider).values_list("stripe_account_id", flat=True).first()
    result = send(
        amount_micros=advance.principal_micros,
        destination=destination or "",
        key=key,
        metadata={"advance_id": str(advance.pk)},
    )
    if result.status == "failed":
        raise Conflict(f"advance {advance.pk} could not be disbursed: {result.failure_reason}")
    return str(result.ref)


def advance_disburse(*, advance_id: int) -> Advance:
    """Fully funded → move each funder's capital out through the gateway; the advance starts repaying.

    Idempotent: an advance already disbursed is returned unchanged; the ledger transaction and the gateway call
    carry the key `advance-disburse:<id>`. A gateway refusal (no connected account, a Stripe error) rolls back
    and raises Conflict: the advance stays funded, the `disburse_advance` task and the daily review retry."""
    with transaction.atomic():
        advance = Advance.objects.select_for_update(no_key=True).filter(pk=advance_id).first()
        if advance is None:
            raise NotFound(f"No advance {advance_id}.")
        if advance.status != AdvanceStatus.FUNDING:
            return advance
        if advance.funded_micros != advance.principal_micros:
            raise Conflict(
                f"advance {advance.pk} is funded {format_usd(micros=advance.funded_micros)} of "
                f"{format_usd(micros=advance.principal_micros)}"
            )
        fundings = list(AdvanceFunding.objects.filter(advance=advance).select_related("lender").order_by("pk"))
        legs: list[tuple[Account, int]] = [
            (account_get(kind=AccountKind.LENDER_CAPITAL, user=f.lender), -f.amount_micros) for f in fundings
        ]
        legs.append((account_get(kind=AccountKind.GATEWAY_CLEARING), advance.principal_micros))
        txn = ledger_transfer(
            key=f"advance-disburse:{advance.pk}",
            kind="advance_disbursement",
            legs=legs,
            memo=f"Advance {advance.pk} disbursed to {advance.get_disburse_to_display().lower()}",
            metadata={"advance_id": advance.pk},
        )
        now = timezone.now()
        advance.status = AdvanceStatus.ACTIVE
        advance.disbursement_transaction = txn
        advance.disbursement_ref = _disbursement_ref(advance)
        advance.disbursed_at = now
        advance.window_start = now
        advance.window_repaid_base = 0
        if advance.application.demand_id:
            from financing.services.demand import demand_start_deadline

            demand_start_deadline(advance=advance, now=now)
        advance.save(
            update_fields=[
                "status",
                "disbursement_transaction",
                "disbursement_ref",
                "disbursed_at",
                "window_start",
                "window_repaid_base",
            ]
        )
        to = advance.vendor_name if advance.disburse_to == "vendor" else "the provider"
        _event(
            advance,
            "disbursed",
            f"{format_usd(micros=advance.principal_micros)} disbursed to {to} (ref {advance.disbursement_ref}).",
        )
        collateral_tag(advance=advance)
        return advance


def advance_disburse_or_retry(*, advance_id: int) -> Advance:
    """Disburse now; when the gateway refuses, leave the advance funded and queue the retrying task."""
    from financing import dispatch

    try:
        return advance_disburse(advance_id=advance_id)
    except Conflict as exc:
        logger.warning("disbursement deferred: %s", exc)
        dispatch.disburse_advance(advance_id)
        return Advance.objects.get(pk=advance_id)


def advances_disburse_funded() -> int:
    """Beat (daily): retry every fully funded advance not disbursed yet. Returns how many were disbursed."""
    done = 0
    for pk in Advance.objects.filter(status=AdvanceStatus.FUNDING, funded_micros=F("principal_micros")).values_list(
        "pk", flat=True
    ):
        try:
            done += advance_disburse(advance_id=pk).status == AdvanceStatus.ACTIVE
        except Conflict as exc:
            logger.warning("disbursement still deferred: %s", exc)
    return done


def collateral_tag(*, advance: Advance) -> list[Collateral]:
    """Tag the financed GPUs: the provider's registered, verified nodes of the financed model (the named node
    first), up to the advance's GPU count. Safe to repeat."""
    from marketplace.models import Node

    tagged = sum(Collateral.objects.filter(advance=advance, released_at=None).values_list("gpu_count", flat=True))
    need = advance.gpu_count - tagged
    if need <= 0 or advance.status not in (*OPEN_ADVANCE_STATUSES, AdvanceStatus.FUNDING):
        return []
    nodes = Node.objects.filter(provider__user=advance.provider, gpu_model=advance.gpu_model, verified=True).exclude(
        collateral__advance=advance
    )
    ordered = sorted(nodes, key=lambda n: (n.pk != advance.node_id, n.pk))
    made = []
    for node in ordered:
        if need <= 0:
            break
        count = min(need, node.gpu_count)
        made.append(Collateral.objects.create(advance=advance, node=node, gpu_count=count, tagged_at=timezone.now()))
        need -= count
        _event(advance, "collateral", f"{count} × {advance.gpu_model.name} on node {node.name} tagged as collateral.")
    return made


# --- early payoff ---------------------------------------------------------------------------------------------------


def advance_payoff_early(*, provider_user: User, advance_id: int, amount_micros: int | None = None) -> Advance:
    """Repay (part of) an open advance from the provider's payable balance; default: everything remaining."""
    with transaction.atomic():
        advance = Advance.objects.select_for_update(no_key=True).filter(pk=advance_id, provider=provider_user).first()
        if advance is None:
            raise NotFound(f"No advance {advance_id}.")
        if advance.status not in OPEN_ADVANCE_STATUSES:
            raise Conflict(f"advance {advance_id} is {advance.status}; only an open advance can be paid off")
        amount = advance.remaining_micros if amount_micros is None else amount_micros
        if amount <= 0 or amount > advance.remaining_micros:
            raise ValidationFailed(
                f"amount must be more than $0 and at most the remaining {format_usd(micros=advance.remaining_micros)}"
            )
        payable = account_get(kind=AccountKind.PROVIDER_PAYABLE, user=provider_user)
        key = f"advance-payoff:{advance.pk}:{advance.repaid_micros}"
        per_lender = _apply_repayment(
            advance=advance, amount=amount, kind=RepaymentKind.EARLY_PAYOFF, source_key=key, lease_ref=None
        )
        legs: list[tuple[Account, int]] = [(payable, -amount)]
        for lender_id in sorted(per_lender):
            legs.append(
                (account_get(kind=AccountKind.LENDER_RECEIVABLE, user=User(pk=lender_id)), per_lender[lender_id])
            )
        ledger_transfer(  # InsufficientFunds (402) when the payable cannot cover it: nothing is written
            key=key,
            kind="advance_early_payoff",
            legs=legs,
            memo=f"Early payoff of advance {advance.pk}",
            metadata={"advance_id": advance.pk},
        )
        _event(advance, "early_payoff", f"Early payoff of {format_usd(micros=amount)} from the provider's balance.")
        return advance


# --- minimum progress and the default policy -------------------------------------------------------------------------


def _set_delinquent(advance: Advance, reason: str, actor: User | None = None) -> None:
    if advance.status == AdvanceStatus.DELINQUENT:
        return
    advance.status = AdvanceStatus.DELINQUENT
    cap = MAX_WITHHOLD_BPS if advance.base_withhold_bps < MAX_WITHHOLD_BPS else MAX_CONTRACT_DELINQUENT_BPS
    advance.withhold_bps = min(advance.base_withhold_bps + DELINQUENT_WITHHOLD_STEP_BPS, cap)
    advance.save(update_fields=["status", "withhold_bps"])
    msg = f"Delinquent: {reason}. Withhold rate raised to {advance.withhold_bps / 100:.0f}% of all earnings."
    _event(advance, "delinquent", msg, actor=actor)
    _notify(advance, f"RigShift advance {advance.pk} is delinquent", msg)


def _set_defaulted(advance: Advance, reason: str, actor: User | None = None) -> None:
    if advance.status not in OPEN_ADVANCE_STATUSES:
        return
    advance.written_off_micros = advance.remaining_micros
    advance.status = AdvanceStatus.DEFAULTED
    advance.closed_at = timezone.now()
    advance.save(update_fields=["written_off_micros", "status", "closed_at"])
    msg = (
        f"Defaulted: {reason}. {format_usd(micros=advance.written_off_micros)} written off; withholding stopped; "
        "collateral stays tagged for recovery."
    )
    _event(advance, "defaulted", msg, actor=actor)
    _notify(advance, f"RigShift advance {advance.pk} defaulted", msg)


def _cure(advance: Advance, reason: str, actor: User | None = None) -> None:
    if advance.status != AdvanceStatus.DELINQUENT:
        return
    advance.status = AdvanceStatus.ACTIVE
    advance.withhold_bps = advance.base_withhold_bps
    advance.consecutive_shortfalls = 0
    advance.save(update_fields=["status", "withhold_bps", "consecutive_shortfalls"])
    _event(advance, "cured", f"Back to active: {reason}. Withhold rate {advance.withhold_bps / 100:.0f}%.", actor=actor)


def advance_review(*, advance_id: int, now: datetime | None = None) -> Advance:  # noqa: C901 — to split into named steps
    """Tag new collateral, run every elapsed 60-day progress window, watch collateral uptime; apply the policy."""
    from marketplace.models import NodeStatus

    now = now or timezone.now()
    with transaction.atomic():
        advance = (
            Advance.objects.select_for_update(no_key=True, of=("self",))
            .select_related("provider", "gpu_model")
            .get(pk=advance_id)
        )
        if advance.status not in OPEN_ADVANCE_STATUSES or advance.window_start is None:
            return advance
        collateral_tag(advance=advance)
        window = timedelta(days=PROGRESS_WINDOW_DAYS)
        while advance.status in OPEN_ADVANCE_STATUSES and now >= advance.window_start + window:
            progress = advance.repaid_micros - advance.window_repaid_base
            end = advance.window_start + window
            if progress < advance.min_progress_micros:
                advance.consecutive_shortfalls += 1
                msg = (
                    f"Minimum progress shortfall for the 60 days to {end:%Y-%m-%d}: repaid "
                    f"{format_usd(micros=progress)} of the {format_usd(micros=advance.min_progress_micros)} minimum "
                    f"({advance.consecutive_shortfalls} in a row)."
                )
                _event(advance, "shortfall", msg, progress=progress, minimum=advance.min_progress_micros)
                _notify(advance, f"RigShift advance {advance.pk}: minimum progress shortfall", msg)
            else:
                advance.consecutive_shortfalls = 0
                _event(advance, "progress_ok", f"60 days to {end:%Y-%m-%d}: repaid {format_usd(micros=progress)}.")
            advance.window_start = end
            advance.window_repaid_base = advance.repaid_micros
            advance.save(update_fields=["consecutive_shortfalls", "window_start", "window_repaid_base"])
            if advance.consecutive_shortfalls >= DEFAULT_AFTER and advance.status == AdvanceStatus.DELINQUENT:
                _set_defaulted(advance, f"{advance.consecutive_shortfalls} consecutive minimum-progress shortfalls")
            elif advance.consecutive_shortfalls >= DELINQUENT_AFTER:
                _set_delinquent(advance, f"{advance.consecutive_shortfalls} consecutive minimum-progress shortfalls")
            elif advance.consecutive_shortfalls == 0 and advance.collateral_offline_since is None:
                _cure(advance, "the last 60-day window met the minimum")
        # Collateral offline: every tagged node offline (or never seen) counts from the first review that saw it.
        nodes = list(
            Collateral.objects.filter(advance=advance, released_at=None).values_list("node__status", flat=True)
        )
        if advance.status in OPEN_ADVANCE_STATUSES and nodes:
            offline = all(s != NodeStatus.ONLINE for s in nodes)
            if offline and advance.collateral_offline_since is None:
                advance.collateral_offline_since = now
                advance.save(update_fields=["collateral_offline_since"])
                _event(advance, "collateral_offline", "The advance's collateral is offline.")
            elif not offline and advance.collateral_offline_since is not None:
                advance.collateral_offline_since = None
                advance.save(update_fields=["collateral_offline_since"])
                _event(advance, "collateral_online", "The advance's collateral is back online.")
            since = advance.collateral_offline_since
            if since is not None and now - since > timedelta(days=COLLATERAL_DEFAULT_DAYS):
                _set_defaulted(advance, f"collateral offline for more than {COLLATERAL_DEFAULT_DAYS} days")
            elif since is not None and now - since > timedelta(days=COLLATERAL_DELINQUENT_DAYS):
                _set_delinquent(advance, f"collateral offline for more than {COLLATERAL_DELINQUENT_DAYS} days")
        return advance


def advances_review(*, now: datetime | None = None) -> int:
    """Daily beat: review every open advance (see advance_review). Returns how many were reviewed."""
    ids = list(Advance.objects.filter(status__in=OPEN_ADVANCE_STATUSES).order_by("pk").values_list("pk", flat=True))
    for pk in ids:
        advance_review(advance_id=pk, now=now)
    return len(ids)


# --- staff actions ---------------------------------------------------------------------------------------------


def advance_staff_action(*, staff_user: User, advance_id: int, action: str, note: str = "") -> Advance:  # noqa: C901 — to split into named steps
    """Staff: `delinquent` (raise the withhold rate), `cure` (back to active), `default` (write off), `review`."""
    if not staff_user.is_staff:
        raise ValidationFailed("staff only")
    if action == "review":
        if not Advance.objects.filter(pk=advance_id).exists():
            raise NotFound(f"No advance {advance_id}.")
        return advance_review(advance_id=advance_id)
    with transaction.atomic():
        advance = Advance.objects.select_for_update(no_key=True).filter(pk=advance_id).first()
        if advance is None:
            raise NotFound(f"No advance {advance_id}.")
        reason = f"staff ({staff_user.get_username()}){': ' + note if note else ''}"
        if action == "delinquent":
            if advance.status != AdvanceStatus.ACTIVE:
                raise Conflict(f"advance {advance_id} is {advance.status}, not active")
            _set_delinquent(advance, reason, actor=staff_user)
        elif action == "cure":
            if advance.status != AdvanceStatus.DELINQUENT:
                raise Conflict(f"advance {advance_id} is {advance.status}, not delinquent")
            _cure(advance, reason, actor=staff_user)
        elif action == "default":
            if advance.status not in OPEN_ADVANCE_STATUSES:
                raise Conflict(f"advance {advance_id} is {advance.status}, not open")
            _set_defaulted(advance, reason, actor=staff_user)
        else:
            raise ValidationFailed(f"unknown action {action!r}: use delinquent, cure, default or review")
        return advance
