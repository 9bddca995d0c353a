"""Billing over the API: customer invoices; provider earnings, payouts and payout onboarding; the staff ledger check."""

from datetime import UTC, datetime
from typing import Any, cast

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Invoice, Payout
from billing.selectors.invoices import invoice_get, invoice_list, provider_statement
from billing.selectors.ledger import ledger_verify
from billing.services.invoices import invoice_on_demand, invoice_reconcile, month_bounds
from billing.services.payouts import provider_payout_onboard
from common.api import IsCustomer, IsProvider, IsStaff
from common.api_schema import error_responses
from common.errors import ValidationFailed
from common.money import from_micros


def _dollars(micros: int | None) -> str | None:
    return None if micros is None else format(from_micros(micros=micros), "f")


class InvoiceLineOut(serializers.Serializer[dict[str, Any]]):
    position = serializers.IntegerField()
    kind = serializers.CharField()
    lease = serializers.IntegerField(allow_null=True)
    description = serializers.CharField()
    gpus = serializers.IntegerField(allow_null=True)
    gpu_model = serializers.CharField()
    seconds = serializers.CharField(allow_null=True, help_text="Wall-clock seconds billed")
    rate_per_gpu_hour = serializers.CharField(allow_null=True, help_text="Dollars")
    amount = serializers.CharField(help_text="Dollars, exact to the micro-dollar")


class InvoiceOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    number = serializers.CharField()
    kind = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    currency = serializers.CharField()
    usage = serializers.CharField()
    credits = serializers.CharField()
    tax = serializers.CharField()
    exact_total = serializers.CharField()
    total = serializers.CharField(help_text="Rounded once, half-up, to cents")
    rounding = serializers.CharField()
    reconciled = serializers.BooleanField(required=False, help_text="Detail only: matches the ledger")
    lines = InvoiceLineOut(many=True, required=False)


def invoice_data(invoice: Invoice, *, lines: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": invoice.pk,
        "number": invoice.number,
        "kind": invoice.kind,
        "period_start": invoice.period_start.isoformat(),
        "period_end": invoice.period_end.isoformat(),
        "currency": invoice.currency,
        "usage": _dollars(invoice.usage_micros),
        "credits": _dollars(invoice.credits_micros),
        "tax": _dollars(invoice.tax_micros),
        "exact_total": _dollars(invoice.exact_total_micros),
        "total": _dollars(invoice.total_cents * 10_000),
        "rounding": _dollars(invoice.rounding_micros),
    }
    if lines:
        data["reconciled"] = not invoice_reconcile(invoice=invoice)
        data["lines"] = [
            {
                "position": line.position,
                "kind": line.kind,
                "lease": line.lease_ref,
                "description": line.description,
                "gpus": line.gpu_count,
                "gpu_model": line.gpu_model_name,
                "seconds": None if line.seconds is None else str(line.seconds),
                "rate_per_gpu_hour": _dollars(line.rate_micros),
                "amount": _dollars(line.amount_micros),
            }
            for line in invoice.lines.all()
        ]
    return data


class InvoiceListCreateView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="invoices_list",
        responses={200: InvoiceOut(many=True), **error_responses(401, 403)},
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        invoices = invoice_list(customer_user=cast(User, request.user))[:200]
        return Response([invoice_data(i, lines=False) for i in invoices])

    @extend_schema(
        operation_id="invoices_create",
        request=None,
        description="Create an on-demand statement of the current month to date.",
        responses={201: InvoiceOut, **error_responses(401, 403)},
        tags=["billing"],
    )
    def post(self, request: Request) -> Response:
        invoice = invoice_on_demand(customer_user=cast(User, request.user))
        return Response(invoice_data(invoice, lines=True), status=status.HTTP_201_CREATED)


class InvoiceDetailView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="invoices_retrieve",
        responses={200: InvoiceOut, **error_responses(401, 403, 404)},
        tags=["billing"],
    )
    def get(self, request: Request, invoice_id: int) -> Response:
        invoice = invoice_get(customer_user=cast(User, request.user), invoice_id=invoice_id)
        return Response(invoice_data(invoice, lines=True))


class PayoutOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    status = serializers.CharField()
    gateway = serializers.CharField()
    reference = serializers.CharField()
    failure_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


def payout_data(p: Payout) -> dict[str, Any]:
    return {
        "id": p.pk,
        "amount": _dollars(p.amount_micros),
        "currency": p.currency,
        "status": p.status,
        "gateway": p.gateway,
        "reference": p.gateway_ref,
        "failure_reason": p.failure_reason,
        "created_at": p.created_at.isoformat(),
    }


class ProviderEarningsOut(serializers.Serializer[dict[str, Any]]):
    month = serializers.CharField()
    gross = serializers.CharField()
    platform_fee = serializers.CharField()
    reserve = serializers.CharField()
    earnings = serializers.CharField()
    withheld_for_financing = serializers.CharField()
    sla_penalties = serializers.CharField()
    paid_out = serializers.CharField()
    balance = serializers.CharField()
    upcoming_payout = serializers.CharField()
    upcoming_payout_on = serializers.DateTimeField(allow_null=True)
    payouts = PayoutOut(many=True)


class ProviderEarningsView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        operation_id="provider_earnings_retrieve",
        parameters=[OpenApiParameter("month", str, description="YYYY-MM (UTC); default: this month")],
        responses={200: ProviderEarningsOut, **error_responses(400, 401, 403)},
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        now = datetime.now(tz=UTC)
        month = request.query_params.get("month", f"{now:%Y-%m}")
        try:
            year, mon = (int(part) for part in month.split("-", 1))
        except ValueError as exc:
            raise ValidationFailed("month: must look like 2026-11", details={"month": ["YYYY-MM"]}) from exc
        start, end = month_bounds(year=year, month=mon)
        s = provider_statement(provider_user=cast(User, request.user), period_start=start, period_end=end)
        return Response(
            {
                "month": f"{start:%Y-%m}",
                "gross": _dollars(s.gross_micros),
                "platform_fee": _dollars(s.fee_micros),
                "reserve": _dollars(s.reserve_micros),
                "earnings": _dollars(s.earnings_micros),
                "withheld_for_financing": _dollars(s.withheld_micros),
                "sla_penalties": _dollars(s.sla_penalties_micros),
                "paid_out": _dollars(s.paid_out_micros),
                "balance": _dollars(s.balance_micros),
                "upcoming_payout": _dollars(s.upcoming_payout_micros),
                "upcoming_payout_on": s.upcoming_payout_on.isoformat() if s.upcoming_payout_on else None,
                "payouts": [payout_data(p) for p in s.payouts],
            }
        )


class ProviderPayoutsView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        operation_id="provider_payouts_list",
        responses={200: PayoutOut(many=True), **error_responses(401, 403)},
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        payouts = Payout.objects.filter(provider=cast(User, request.user)).order_by("-created_at", "-id")[:200]
        return Response([payout_data(p) for p in payouts])


class OnboardingOut(serializers.Serializer[dict[str, Any]]):
    url = serializers.CharField(help_text="Where to finish payout setup (Stripe Connect onboarding)")


class ProviderPayoutAccountView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        operation_id="provider_payout_account_onboard",
        request=None,
        responses={200: OnboardingOut, **error_responses(401, 403, 404)},
        tags=["billing"],
    )
    def post(self, request: Request) -> Response:
        return Response({"url": provider_payout_onboard(provider_user=cast(User, request.user))})


class LedgerCheckOut(serializers.Serializer[dict[str, Any]]):
    ok = serializers.BooleanField()
    checks = serializers.ListField(child=serializers.CharField())
    violations = serializers.ListField(child=serializers.CharField())


class LedgerCheckView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="ledger_check", responses={200: LedgerCheckOut, **error_responses(401, 403)}, tags=["billing"]
    )
    def get(self, request: Request) -> Response:
        report = ledger_verify()
        return Response({"ok": report.ok, "checks": report.checks, "violations": report.violations})
