"""The customer wallet over the API: balance, recent transactions, top-ups (own only)."""

from decimal import Decimal
from typing import Any, cast

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Entry, TopUp
from billing.selectors.wallet import wallet_balance, wallet_entries
from billing.services.topups import MAX_TOPUP_MICROS, topup_create
from billing.services.wallet import low_balance_threshold_micros
from common.api import IsCustomer
from common.api_schema import error_responses
from common.money import from_micros
from common.numbers import MoneyField

RECENT_TRANSACTIONS = 20


def _dollars(micros: int) -> str:
    return format(from_micros(micros=micros), "f")


class TransactionOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    amount = serializers.CharField(help_text="Dollars; + into the wallet, - out of it")
    memo = serializers.CharField()


class WalletOut(serializers.Serializer[dict[str, Any]]):
    available = serializers.CharField(help_text="Dollars free to spend")
    held = serializers.CharField(help_text="Dollars held in escrow for booked jobs")
    currency = serializers.CharField()
    low_balance = serializers.BooleanField()
    transactions = TransactionOut(many=True)


class TopUpIn(serializers.Serializer[dict[str, Any]]):
    amount = MoneyField(
        places=2,
        max_micros=MAX_TOPUP_MICROS,
        positive=True,
        help_text='Dollars, > 0 and <= 100000, at most 2 decimals, e.g. "50.00"',
    )


class TopUpOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    gateway = serializers.CharField()
    checkout_url = serializers.CharField(help_text="Where to pay (Stripe); empty when settled at once")
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


def entry_data(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "at": entry.transaction.created_at.isoformat(),
        "kind": entry.transaction.kind,
        "amount": _dollars(entry.amount),
        "memo": entry.transaction.memo,
    }


def topup_data(topup: TopUp) -> dict[str, Any]:
    return {
        "id": topup.pk,
        "status": topup.status,
        "amount": format(from_micros(micros=topup.amount_micros).quantize(Decimal("0.01")), "f"),
        "currency": topup.currency,
        "gateway": topup.gateway,
        "checkout_url": topup.checkout_url,
        "created_at": topup.created_at.isoformat(),
        "completed_at": topup.completed_at.isoformat() if topup.completed_at else None,
    }


class WalletView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="wallet_retrieve", responses={200: WalletOut, **error_responses(401, 403)}, tags=["wallet"]
    )
    def get(self, request: Request) -> Response:
        balance = wallet_balance(user=request.user)  # type: ignore[arg-type]
        return Response(
            {
                "available": _dollars(balance.available_micros),
                "held": _dollars(balance.held_micros),
                "currency": "USD",
                "low_balance": balance.available_micros < low_balance_threshold_micros(),
                "transactions": [entry_data(e) for e in wallet_entries(user=request.user, limit=RECENT_TRANSACTIONS)],  # type: ignore[arg-type]
            }
        )


class TopUpListCreateView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="wallet_topups_list",
        responses={200: TopUpOut(many=True), **error_responses(401, 403)},
        tags=["wallet"],
    )
    def get(self, request: Request) -> Response:
        topups = TopUp.objects.filter(user=cast(User, request.user)).order_by("-created_at", "-id")[:100]
        return Response([topup_data(t) for t in topups])

    @extend_schema(
        operation_id="wallet_topups_create",
        request=TopUpIn,
        responses={
            201: TopUpOut,
            **error_responses(
                400, 401, 403, d400="Amount missing, not positive, over $100,000 or with more than 2 decimals"
            ),
        },
        tags=["wallet"],
    )
    def post(self, request: Request) -> Response:
        data = TopUpIn(data=request.data)
        data.is_valid(raise_exception=True)
        amount_micros = data.validated_data["amount"]  # micros, by the one money rule (common.numbers)
        topup = topup_create(user=request.user, amount_micros=amount_micros)  # type: ignore[arg-type]
        return Response(topup_data(topup), status=status.HTTP_201_CREATED)
