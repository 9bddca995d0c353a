"""Provider node API: list, register (returns the agent token once), read, edit the listing, rotate/revoke."""

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import IsProvider, Pagination, represent_many
from common.api_schema import paginated
from common.money import from_micros, to_micros
from common.numbers import DecimalNumberField
from marketplace.models import Node, Provider, Region
from marketplace.selectors.nodes import node_agent_command, node_get_for_provider, node_list_for_provider
from marketplace.services.nodes import (
    MAX_GPUS_PER_NODE,
    node_register,
    node_token_revoke,
    node_token_rotate,
    node_update_listing,
)
from marketplace.services.reliability import RELIABILITY_MEANING, node_reliability_value

ERROR = inline_serializer("NodeError", fields={"detail": serializers.CharField(), "code": serializers.CharField()})
ERRORS = {
    400: OpenApiResponse(ERROR, description="Invalid input (message says which field and why)"),
    401: OpenApiResponse(ERROR, description="Not authenticated"),
    403: OpenApiResponse(ERROR, description="Not a provider account"),
}
NOT_FOUND = {404: OpenApiResponse(ERROR, description="No such node among yours")}


def _price_field(**kwargs: Any) -> serializers.DecimalField:
    return DecimalNumberField(
        max_digits=12, decimal_places=6, coerce_to_string=True, help_text="USD per GPU-hour", **kwargs
    )


class NodeOutput(serializers.ModelSerializer[Node]):
    gpu_model = serializers.CharField(source="gpu_model.slug", read_only=True)
    gpu_model_name = serializers.CharField(source="gpu_model.name", read_only=True)
    price_per_gpu_hour = serializers.SerializerMethodField()
    min_bid_per_gpu_hour = serializers.SerializerMethodField()
    storage_price_per_gb_month = serializers.SerializerMethodField()
    egress_price_per_gb = serializers.SerializerMethodField()
    token_revoked = serializers.SerializerMethodField()
    reliability = serializers.SerializerMethodField(help_text=RELIABILITY_MEANING + " Null until the agent reports.")

    class Meta:
        model = Node
        fields = [
            "id",
            "name",
            "region",
            "country",
            "gpu_model",
            "gpu_model_name",
            "gpu_count",
            "cpu_cores",
            "ram_gb",
            "disk_gb",
            "inet_down_mbps",
            "inet_up_mbps",
            "price_per_gpu_hour",
            "min_bid_per_gpu_hour",
            "storage_price_per_gb_month",
            "egress_price_per_gb",
            "available_from",
            "available_until",
            "listed",
            "status",
            "last_heartbeat_at",
            "agent_registered_at",
            "agent_report",
            "hardware_mismatch",
            "dlperf",
            "benchmark_flag",
            "verified",
            "verified_at",
            "reliability",
            "token_prefix",
            "token_revoked",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_reliability(self, node: Node) -> float | None:
        return node_reliability_value(node)

    def get_price_per_gpu_hour(self, node: Node) -> str:
        return str(from_micros(micros=node.price_micros))

    def get_min_bid_per_gpu_hour(self, node: Node) -> str:
        return str(from_micros(micros=node.min_bid_micros))

    def get_storage_price_per_gb_month(self, node: Node) -> str:
        """USD per GB-month of storage a lease holds (0 = not charged)."""
        return str(from_micros(micros=node.storage_price_micros))

    def get_egress_price_per_gb(self, node: Node) -> str:
        """USD per GB a lease sends out (0 = not charged)."""
        return str(from_micros(micros=node.egress_price_micros))

    def get_token_revoked(self, node: Node) -> bool:
        return node.token_revoked_at is not None


class NodeCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    region = serializers.ChoiceField(choices=Region.choices)
    country = serializers.CharField(max_length=2, min_length=2, help_text="ISO 3166-1 alpha-2")
    gpu_model = serializers.CharField(max_length=40, help_text="Catalog slug, e.g. rtx-4090")
    gpu_count = serializers.IntegerField(min_value=1, max_value=MAX_GPUS_PER_NODE)
    cpu_cores = serializers.IntegerField(min_value=0, default=0)
    ram_gb = serializers.IntegerField(min_value=0, default=0)
    disk_gb = serializers.IntegerField(min_value=0, default=0)
    inet_down_mbps = serializers.IntegerField(min_value=0, default=0)
    inet_up_mbps = serializers.IntegerField(min_value=0, default=0)
    price_per_gpu_hour = _price_field(min_value=Decimal(0), max_value=Decimal(100), default=Decimal(0))
    min_bid_per_gpu_hour = _price_field(min_value=Decimal(0), max_value=Decimal(100), default=Decimal(0))
    listed = serializers.BooleanField(default=False)


class NodeCreateOutput(NodeOutput):
    agent_token = serializers.SerializerMethodField(help_text="Raw agent token; shown only in this response")
    agent_command = serializers.SerializerMethodField(help_text="Command that starts the agent on the node")

    class Meta(NodeOutput.Meta):
        fields = [*NodeOutput.Meta.fields, "agent_token", "agent_command"]
        read_only_fields = fields

    def get_agent_token(self, node: Node) -> str:
        return str(self.context["agent_token"])

    def get_agent_command(self, node: Node) -> str:
        return str(self.context["agent_command"])


class NodeListingInput(serializers.Serializer[Any]):
    price_per_gpu_hour = _price_field(min_value=Decimal(0), max_value=Decimal(100), required=False)
    min_bid_per_gpu_hour = _price_field(min_value=Decimal(0), max_value=Decimal(100), required=False)
    storage_price_per_gb_month = DecimalNumberField(
        max_digits=12,
        decimal_places=6,
        coerce_to_string=True,
        min_value=Decimal(0),
        max_value=Decimal(10),
        required=False,
        help_text="USD per GB-month of storage a lease holds (0 = not charged)",
    )
    egress_price_per_gb = DecimalNumberField(
        max_digits=12,
        decimal_places=6,
        coerce_to_string=True,
        min_value=Decimal(0),
        max_value=Decimal(10),
        required=False,
        help_text="USD per GB a lease sends out (0 = not charged)",
    )
    available_from = serializers.DateTimeField(required=False, allow_null=True)
    available_until = serializers.DateTimeField(required=False, allow_null=True)
    listed = serializers.BooleanField(required=False)


class NodeTokenOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    token_prefix = serializers.CharField()
    agent_token = serializers.CharField(help_text="Raw agent token; shown only in this response")
    agent_command = serializers.CharField()


class NodeTokenRevokeOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    token_prefix = serializers.CharField()
    token_revoked = serializers.BooleanField()
    token_revoked_at = serializers.DateTimeField()


def _provider(request: Request) -> Provider:
    return request.user.provider  # type: ignore[union-attr]


def _command(request: Request, raw_token: str) -> str:
    return node_agent_command(server_url=request.build_absolute_uri("/"), token=raw_token)


class NodeListCreateApi(APIView):
    permission_classes = [IsProvider]

    @extend_schema(operation_id="nodes_list", responses={200: paginated(NodeOutput), **ERRORS})
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(node_list_for_provider(provider=_provider(request)), request, view=self)
        return paginator.get_paginated_response(represent_many(NodeOutput, page or []))

    @extend_schema(operation_id="nodes_register", request=NodeCreateInput, responses={201: NodeCreateOutput, **ERRORS})
    def post(self, request: Request) -> Response:
        data = NodeCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        node, raw_token = node_register(
            provider=_provider(request),
            name=values["name"],
            region=values["region"],
            country=values["country"],
            gpu_model_slug=values["gpu_model"],
            gpu_count=values["gpu_count"],
            cpu_cores=values["cpu_cores"],
            ram_gb=values["ram_gb"],
            disk_gb=values["disk_gb"],
            inet_down_mbps=values["inet_down_mbps"],
            inet_up_mbps=values["inet_up_mbps"],
            price_micros=to_micros(amount=values["price_per_gpu_hour"]),
            min_bid_micros=to_micros(amount=values["min_bid_per_gpu_hour"]),
            listed=values["listed"],
        )
        context = {"agent_token": raw_token, "agent_command": _command(request, raw_token)}
        response = Response(NodeCreateOutput(node, context=context).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class NodeDetailApi(APIView):
    permission_classes = [IsProvider]

    @extend_schema(operation_id="nodes_retrieve", responses={200: NodeOutput, **ERRORS, **NOT_FOUND})
    def get(self, request: Request, node_id: int) -> Response:
        node = node_get_for_provider(provider=_provider(request), node_id=node_id)
        return Response(NodeOutput(node).data)

    @extend_schema(
        operation_id="nodes_update_listing",
        request=NodeListingInput,
        responses={200: NodeOutput, **ERRORS, **NOT_FOUND},
        description=(
            "Change the listing: any of the price, minimum bid, storage and egress prices, availability window "
            "and listed flag."
        ),
    )
    def patch(self, request: Request, node_id: int) -> Response:
        node = node_get_for_provider(provider=_provider(request), node_id=node_id)
        data = NodeListingInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        price = values.get("price_per_gpu_hour")
        bid = values.get("min_bid_per_gpu_hour")
        storage = values.get("storage_price_per_gb_month")
        egress = values.get("egress_price_per_gb")
        node_update_listing(
            node=node,
            price_micros=node.price_micros if price is None else to_micros(amount=price),
            min_bid_micros=node.min_bid_micros if bid is None else to_micros(amount=bid),
            available_from=values.get("available_from", node.available_from),
            available_until=values.get("available_until", node.available_until),
            listed=values.get("listed", node.listed),
            storage_price_micros=None if storage is None else to_micros(amount=storage),
            egress_price_micros=None if egress is None else to_micros(amount=egress),
        )
        return Response(NodeOutput(node).data)


class NodeTokenRotateApi(APIView):
    permission_classes = [IsProvider]

    @extend_schema(operation_id="nodes_token_rotate", request=None, responses={200: NodeTokenOutput, **NOT_FOUND})
    def post(self, request: Request, node_id: int) -> Response:
        node = node_get_for_provider(provider=_provider(request), node_id=node_id)
        raw_token = node_token_rotate(node=node)
        body = {
            "id": node.pk,
            "token_prefix": node.token_prefix,
            "agent_token": raw_token,
            "agent_command": _command(request, raw_token),
        }
        response = Response(NodeTokenOutput(body).data)
        response["Cache-Control"] = "no-store"
        return response


class NodeTokenRevokeApi(APIView):
    permission_classes = [IsProvider]

    @extend_schema(operation_id="nodes_token_revoke", request=None, responses={200: NodeTokenRevokeOutput, **NOT_FOUND})
    def post(self, request: Request, node_id: int) -> Response:
        node = node_get_for_provider(provider=_provider(request), node_id=node_id)
        node_token_revoke(node=node)
        body = {
            "id": node.pk,
            "token_prefix": node.token_prefix,
            "token_revoked": True,
            "token_revoked_at": node.token_revoked_at,
        }
        return Response(NodeTokenRevokeOutput(body).data)
