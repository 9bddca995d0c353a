"""Reserved capacity over the API: a customer books N GPUs of a model or tier for a term (own contracts only)."""

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.services.reserved import reserved_contract_book
from common.api import IsCustomer
from common.api_schema import error_responses
from common.money import from_micros
from financing.models import ReservedContract


class ReservedIn(serializers.Serializer[dict[str, Any]]):
    gpu_model = serializers.CharField(required=False, help_text="Catalog slug (or give tier)")
    tier = serializers.ChoiceField(choices=["training", "fine_tuning", "inference"], required=False)
    count = serializers.IntegerField(min_value=1, help_text="GPUs, all on one node")
    term_months = serializers.IntegerField(min_value=1, max_value=36)


class ReservedOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    node = serializers.IntegerField()
    gpu_model = serializers.CharField()
    count = serializers.IntegerField()
    term_months = serializers.IntegerField()
    discount = serializers.CharField(help_text="e.g. '0.25'")
    list_price_per_gpu_hour = serializers.CharField()
    monthly = serializers.CharField()
    months_paid = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()


def _out(c: ReservedContract) -> dict[str, Any]:
    return {
        "id": c.pk,
        "status": c.status,
        "node": c.node_id,
        "gpu_model": c.gpu_model.slug,
        "count": c.gpu_count,
        "term_months": c.term_months,
        "discount": str(c.discount_bps / 10_000),
        "list_price_per_gpu_hour": format(from_micros(micros=c.list_price_micros), "f"),
        "monthly": format(from_micros(micros=c.monthly_micros), "f"),
        "months_paid": c.months_paid,
        "starts_at": c.starts_at,
        "ends_at": c.ends_at,
    }


class ReservedContractListCreateView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(responses={200: ReservedOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        rows = ReservedContract.objects.filter(customer=request.user).select_related("gpu_model")
        return Response([_out(c) for c in rows])

    @extend_schema(
        request=ReservedIn,
        responses={201: ReservedOut, **error_responses(400, 401, 402, 403, 409)},
        description="Reserve GPUs on one node for a term at a discount; month 1 is charged from the wallet now.",
    )
    def post(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        data = ReservedIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        contract = reserved_contract_book(
            customer_user=request.user,
            gpu_count=v["count"],
            term_months=v["term_months"],
            gpu_model_slug=v.get("gpu_model"),
            tier=v.get("tier"),
        )
        return Response(_out(contract), status=status.HTTP_201_CREATED)
