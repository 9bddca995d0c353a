"""Customer invoices: a closed statement per month (and on demand) that reconciles to the ledger.

Lines are exact (micro-dollars): one per lease with usage settled in the period (GPUs, model,
seconds, rate, amount), one per SLA credit (negative), and a tax line from `invoice_tax_micros`.
The total is rounded ONCE, at close, half-up to cents; the difference between the rounded total and
the exact sum is shown as its own "Rounding to cents" line, so the printed lines add up to the printed
total. The ledger is not touched by rounding: wallets are prepaid and were debited the exact
micro-amounts when usage settled, so an invoice is a statement of what was taken, and the exact total
equals the ledger's movements for the period to the micro-dollar (see `invoice_reconcile`).
"""

from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.models import (
    AccountKind,
    Entry,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceLineKind,
    Settlement,
    SlaCredit,
)
from billing.services.settlement import BYTES_PER_GB, STORAGE_MONTH_MS
from common.errors import ValidationFailed
from common.money import format_rate

CENT = 10_000


def invoice_tax_micros(*, customer_user: User, taxable_micros: int, period_end: datetime) -> int:
    """Tax due on an invoice's taxable amount. HOOK: returns 0 today.

    RigShift sells prepaid compute; sales tax / VAT depends on the customer's jurisdiction and tax id
    (reverse charge for EU businesses, US state nexus). Plug in Stripe Tax or a rate table here; the
    invoice adds the returned micro-dollars as a "Tax" line before rounding.
    """
    return 0


def month_bounds(*, year: int, month: int) -> tuple[datetime, datetime]:
    if not 1 <= month <= 12 or not 2000 <= year <= 2999:
        raise ValidationFailed("month must be 1–12 and year a four-digit year")
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _round_cents(micros: int) -> int:
    return int((Decimal(micros) / CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _before(settlement: Settlement) -> tuple[int, int]:
    """Cumulative (storage GB-ms, egress bytes) of the lease's settlement before `settlement` ((0, 0) if none)."""
    previous = (
        Settlement.objects.filter(lease_account_id=settlement.lease_account_id, pk__lt=settlement.pk)
        .order_by("-pk")
        .values_list("upto_storage_gb_ms", "upto_egress_bytes")
        .first()
    )
    return previous or (0, 0)


def _build(*, invoice: Invoice) -> None:
    settlements = (
        Settlement.objects.filter(
            lease_account__customer=invoice.customer,
            created_at__gte=invoice.period_start,
            created_at__lt=invoice.period_end,
        )
        .select_related("lease_account")
        .order_by("lease_account__lease_ref", "id")
    )
    per_lease: dict[int, dict[str, int]] = defaultdict(
        lambda: {"gpu_ms": 0, "amount": 0, "storage": 0, "egress": 0, "gb_ms": 0, "bytes": 0}
    )
    accounts = {}
    for s in settlements:
        ref = s.lease_account.lease_ref
        agg = per_lease[ref]
        if ref not in accounts:
            accounts[ref] = s.lease_account
            # storage and egress quantities in the period: cumulative totals since the lease's previous settlement
            if s.storage_micros or s.egress_micros or s.upto_storage_gb_ms or s.upto_egress_bytes:
                agg["gb_ms"], agg["bytes"] = _before(s)
            agg["gb_ms"], agg["bytes"] = -agg["gb_ms"], -agg["bytes"]
        agg["gpu_ms"] += s.gpu_ms
        agg["amount"] += s.charged_micros - s.storage_micros - s.egress_micros
        agg["storage"] += s.storage_micros
        agg["egress"] += s.egress_micros
        agg["last_gb_ms"], agg["last_bytes"] = s.upto_storage_gb_ms, s.upto_egress_bytes
    lines: list[InvoiceLine] = []
    for ref, agg in per_lease.items():
        acct = accounts[ref]
        wall_seconds = Decimal(agg["gpu_ms"]) / 1000 / acct.gpu_count
        lines.append(
            InvoiceLine(
                kind=InvoiceLineKind.USAGE,
                lease_ref=ref,
                description=f"Lease {ref} (job {acct.job_ref}): {acct.gpu_count}× {acct.gpu_model_name or 'GPU'}",
                gpu_count=acct.gpu_count,
                gpu_model_name=acct.gpu_model_name,
                seconds=wall_seconds.quantize(Decimal("0.001")),
                rate_micros=acct.price_micros,
                amount_micros=agg["amount"],
            )
        )
        if agg["storage"]:
            gb_months = Decimal(agg["last_gb_ms"] + agg["gb_ms"]) / STORAGE_MONTH_MS
            lines.append(
                InvoiceLine(
                    kind=InvoiceLineKind.STORAGE,
                    lease_ref=ref,
                    description=(
                        f"Storage (GB-month): lease {ref}, {gb_months.quantize(Decimal('0.000001'))} GB-month "
                        f"at {format_rate(micros=acct.storage_price_micros, unit='GB-month')}"
                    ),
                    amount_micros=agg["storage"],
                )
            )
        if agg["egress"]:
            gigabytes = Decimal(agg["last_bytes"] + agg["bytes"]) / BYTES_PER_GB
            lines.append(
                InvoiceLine(
                    kind=InvoiceLineKind.EGRESS,
                    lease_ref=ref,
                    description=(
                        f"Egress (GB): lease {ref}, {gigabytes.quantize(Decimal('0.000001'))} GB "
                        f"at {format_rate(micros=acct.egress_price_micros, unit='GB')}"
                    ),
                    amount_micros=agg["egress"],
                )
            )
    usage = sum(line.amount_micros for line in lines)
    credits = 0
    for credit in SlaCredit.objects.filter(
        lease_account__customer=invoice.customer,
        created_at__gte=invoice.period_start,
        created_at__lt=invoice.period_end,
        credit_micros__gt=0,
    ).select_related("lease_account"):
        credits += credit.credit_micros
        lines.append(
            InvoiceLine(
                kind=InvoiceLineKind.CREDIT,
                lease_ref=credit.lease_account.lease_ref,
                description=f"SLA credit: lease {credit.lease_account.lease_ref} failed with its node",
                amount_micros=-credit.credit_micros,
            )
        )
    tax = invoice_tax_micros(
        customer_user=invoice.customer, taxable_micros=usage - credits, period_end=invoice.period_end
    )
    lines.append(InvoiceLine(kind=InvoiceLineKind.TAX, description="Tax", amount_micros=tax))
    exact = usage - credits + tax
    cents = _round_cents(exact)
    rounding = cents * CENT - exact
    if rounding:
        lines.append(
            InvoiceLine(kind=InvoiceLineKind.ROUNDING, description="Rounding to cents", amount_micros=rounding)
        )
    for position, line in enumerate(lines, start=1):
        line.invoice = invoice
        line.position = position
    InvoiceLine.objects.bulk_create(lines)
    invoice.usage_micros, invoice.credits_micros, invoice.tax_micros = usage, credits, tax
    invoice.exact_total_micros, invoice.total_cents, invoice.rounding_micros = exact, cents, rounding
    invoice.number = f"RS-{invoice.period_start:%Y%m}-{invoice.pk:06d}"
    invoice.save(
        update_fields=[
            "usage_micros",
            "credits_micros",
            "tax_micros",
            "exact_total_micros",
            "total_cents",
            "rounding_micros",
            "number",
        ]
    )


def invoice_close_month(*, customer_user: User, year: int, month: int, now: datetime | None = None) -> Invoice:
    """The customer's invoice for a calendar month (UTC), closed once; a repeat returns the same invoice."""
    start, end = month_bounds(year=year, month=month)
    if end > (now or timezone.now()):
        raise ValidationFailed("a month's invoice closes after the month ends; ask for an on-demand statement")
    existing = Invoice.objects.filter(customer=customer_user, kind=InvoiceKind.MONTHLY, period_start=start).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            invoice = Invoice.objects.create(
                customer=customer_user,
                kind=InvoiceKind.MONTHLY,
                period_start=start,
                period_end=end,
                number=f"pending-{customer_user.pk}-{start:%Y%m}",
            )
            _build(invoice=invoice)
            return invoice
    except IntegrityError:
        return Invoice.objects.get(customer=customer_user, kind=InvoiceKind.MONTHLY, period_start=start)


def invoice_on_demand(*, customer_user: User, now: datetime | None = None) -> Invoice:
    """A statement of the current month to date (it does not replace the month's invoice)."""
    now = now or timezone.now()
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    with transaction.atomic():
        invoice = Invoice.objects.create(
            customer=customer_user,
            kind=InvoiceKind.ON_DEMAND,
            period_start=start,
            period_end=now,
            number=f"pending-{customer_user.pk}-{now.timestamp()}",
        )
        _build(invoice=invoice)
        return invoice


def invoices_close_previous_month(*, now: datetime | None = None) -> int:
    """Close last month's invoice for every customer with settled usage or credits in it (idempotent)."""
    now = now or timezone.now()
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    start, end = month_bounds(year=year, month=month)
    users = set(
        Settlement.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
            "lease_account__customer", flat=True
        )
    ) | set(
        SlaCredit.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
            "lease_account__customer", flat=True
        )
    )
    closed = 0
    for user in User.objects.filter(pk__in=users).order_by("pk"):
        invoice_close_month(customer_user=user, year=year, month=month, now=now)
        closed += 1
    return closed


def invoice_reconcile(*, invoice: Invoice) -> list[str]:
    """Differences between the invoice and the ledger for its period (empty: reconciled to the micro)."""
    problems = []
    escrow_debits = (
        Entry.objects.filter(
            transaction__settlement__lease_account__customer=invoice.customer,
            transaction__settlement__created_at__gte=invoice.period_start,
            transaction__settlement__created_at__lt=invoice.period_end,
            account__kind=AccountKind.CUSTOMER_ESCROW,
        ).aggregate(s=Sum("amount"))["s"]
        or 0
    )
    if -escrow_debits != invoice.usage_micros:
        problems.append(f"usage {invoice.usage_micros} ≠ escrow debited {-escrow_debits}")
    credited = (
        Entry.objects.filter(
            transaction__sla_credit__lease_account__customer=invoice.customer,
            transaction__sla_credit__created_at__gte=invoice.period_start,
            transaction__sla_credit__created_at__lt=invoice.period_end,
            account__kind=AccountKind.CUSTOMER_WALLET,
        ).aggregate(s=Sum("amount"))["s"]
        or 0
    )
    if credited != invoice.credits_micros:
        problems.append(f"credits {invoice.credits_micros} ≠ wallet credited {credited}")
    lines_total = invoice.lines.aggregate(s=Sum("amount_micros"))["s"] or 0
    if lines_total != invoice.total_cents * CENT:
        problems.append(f"lines add up to {lines_total}, not the rounded total {invoice.total_cents} cents")
    return problems
