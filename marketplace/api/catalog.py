"""GPU catalog API (public) and fleet assessment API (providers, own assessments only)."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import IsProvider, Pagination
from common.errors import ValidationFailed
from common.json_body import JsonBodyParser
from common.money import from_micros
from common.numbers import DecimalNumberField
from marketplace.models import FleetAssessment, GPUModel, Provider, Tier, Vendor
from marketplace.selectors.assessment import fleet_assessment_get, fleet_assessment_list
from marketplace.selectors.catalog import gpu_model_get, gpu_model_list
from marketplace.services.assessment import (
    DEFAULT_UTILISATION,
    fleet_assess,
    max_upload_bytes,
    parse_fleet_csv,
    request_body_size_check,
    upload_size_check,
)

ERROR = inline_serializer("CatalogError", fields={"detail": serializers.CharField(), "code": serializers.CharField()})
BAD_REQUEST = {400: OpenApiResponse(ERROR, description="Invalid input; the message names the line or value")}
AUTH_ERRORS = {
    401: OpenApiResponse(ERROR, description="Not authenticated"),
    403: OpenApiResponse(ERROR, description="Not a provider account"),
}
NOT_FOUND = {404: OpenApiResponse(ERROR, description="Not found (or not yours)")}
TOO_LARGE = {413: OpenApiResponse(ERROR, description="Upload larger than RIGSHIFT_MAX_UPLOAD_BYTES")}


# --- GPU catalog ---------------------------------------------------------------------------------------------------


class GPUModelOut(serializers.ModelSerializer[GPUModel]):
    reference_price_per_gpu_hour = serializers.SerializerMethodField(
        help_text="Reference market price per GPU-hour in USD (decimal string), used when no node is listed"
    )

    class Meta:
        model = GPUModel
        fields = [
            "slug",
            "name",
            "vendor",
            "architecture",
            "vram_gb",
            "mem_bandwidth_gbs",
            "fp16_tflops",
            "fp32_tflops",
            "compute_capability",
            "tensor_cores",
            "framework_support",
            "nvlink",
            "tdp_w",
            "launch_year",
            "launch_price_usd",
            "is_mining_card",
            "aliases",
            "tier",
            "tier_reason",
            "reference_price_per_gpu_hour",
        ]

    def get_reference_price_per_gpu_hour(self, obj: GPUModel) -> str:
        return str(from_micros(micros=obj.reference_price_micros))


class GPUModelListView(generics.ListAPIView[GPUModel]):
    """The GPU catalog with each model's AI tier; public."""

    permission_classes = [permissions.AllowAny]
    serializer_class = GPUModelOut
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet[GPUModel]:
        params = self.request.query_params
        return gpu_model_list(tier=params.get("tier"), vendor=params.get("vendor"))

    @extend_schema(
        operation_id="gpu_models_list",
        parameters=[
            OpenApiParameter("tier", OpenApiTypes.STR, enum=Tier.values, description="Only models of this AI tier"),
            OpenApiParameter("vendor", OpenApiTypes.STR, enum=Vendor.values, description="Only this vendor"),
        ],
        responses={200: GPUModelOut(many=True), **BAD_REQUEST},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


class GPUModelDetailView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(operation_id="gpu_models_retrieve", responses={200: GPUModelOut, **NOT_FOUND})
    def get(self, request: Request, slug: str) -> Response:
        return Response(GPUModelOut(gpu_model_get(slug=slug)).data)


# --- Fleet assessments ---------------------------------------------------------------------------------------------


class FleetLineIn(serializers.Serializer[dict[str, Any]]):
    model = serializers.CharField(allow_blank=True, trim_whitespace=True, help_text="GPU model as you write it")
    count = serializers.IntegerField(help_text="Number of GPUs, 1–100,000")


class FleetAssessmentIn(serializers.Serializer[dict[str, Any]]):
    lines = FleetLineIn(many=True, required=False, help_text="JSON input: one entry per GPU model")
    file = serializers.FileField(required=False, help_text="Multipart input: a CSV of `model,count` lines")
    utilisation = DecimalNumberField(
        max_digits=4,
        decimal_places=3,
        min_value=0,
        max_value=1,
        required=False,
        help_text=f"Assumed utilisation 0–1 (default {DEFAULT_UTILISATION})",
    )


class ReportLineOut(serializers.Serializer[dict[str, Any]]):
    position = serializers.IntegerField()
    raw_model = serializers.CharField()
    count = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    vram_gb = serializers.CharField()
    tier = serializers.ChoiceField(choices=Tier.choices)
    reason = serializers.CharField()
    qualifies = serializers.BooleanField()
    price_per_gpu_hour = serializers.CharField(help_text="USD, decimal string")
    price_source = serializers.ChoiceField(choices=["market", "reference", "none"])
    monthly_earnings_per_gpu = serializers.CharField(help_text="USD, decimal string")
    monthly_earnings_total = serializers.CharField(help_text="USD, decimal string")


class UnmatchedOut(serializers.Serializer[dict[str, Any]]):
    position = serializers.IntegerField()
    raw_model = serializers.CharField()
    count = serializers.IntegerField()
    message = serializers.CharField()


class ModelSummaryOut(serializers.Serializer[dict[str, Any]]):
    slug = serializers.CharField()
    name = serializers.CharField()
    tier = serializers.CharField()
    count = serializers.IntegerField()
    monthly_earnings_total = serializers.CharField()


class UpgradeFinancingOut(serializers.Serializer[dict[str, Any]]):
    """The upgrade quote (marketplace/services/earnings.py): what one application for these GPUs is offered now."""

    available = serializers.BooleanField()
    offered = serializers.BooleanField(required=False)
    count = serializers.IntegerField(required=False, help_text="GPUs in one application (at most 256)")
    applications = serializers.IntegerField(required=False, help_text="Applications needed for every GPU")
    offered_count = serializers.IntegerField(required=False)
    principal = serializers.CharField(required=False)
    fee = serializers.CharField(required=False)
    withhold_rate = serializers.CharField(required=False)
    payoff_months = serializers.CharField(required=False, allow_null=True)
    utilisation = serializers.CharField(required=False)
    reasons = serializers.ListField(child=serializers.CharField())


class UpgradeOptionOut(serializers.Serializer[dict[str, Any]]):
    slug = serializers.CharField()
    name = serializers.CharField()
    tier = serializers.CharField()
    replaces_gpus = serializers.IntegerField()
    unit_cost = serializers.CharField()
    cost_basis = serializers.CharField()
    total_cost = serializers.CharField()
    price_per_gpu_hour = serializers.CharField()
    price_source = serializers.CharField()
    monthly_earnings_per_gpu = serializers.CharField()
    monthly_earnings_total = serializers.CharField()
    fleet_monthly_earnings_after = serializers.CharField()
    payback_months = serializers.CharField(
        allow_null=True, help_text="The financing offer's expected payoff for one application; null: no offer"
    )
    financing = UpgradeFinancingOut()


class UpgradePathOut(serializers.Serializer[dict[str, Any]]):
    replaces_gpus = serializers.IntegerField()
    options = UpgradeOptionOut(many=True)
    note = serializers.CharField()


class EarningsOut(serializers.Serializer[dict[str, Any]]):
    monthly_total = serializers.CharField()
    monthly_per_qualifying_gpu = serializers.CharField()


class FleetAssessmentOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    total_gpus = serializers.IntegerField()
    qualifying_gpus = serializers.IntegerField()
    unsuitable_gpus = serializers.IntegerField()
    unmatched_gpus = serializers.IntegerField()
    qualifying_share = serializers.FloatField(help_text="Share of GPUs whose tier is not `unsuitable`, 0–1")
    tiers = serializers.DictField(child=serializers.IntegerField(), help_text="GPUs per tier (and `unmatched`)")
    utilisation = serializers.CharField()
    hours_per_month = serializers.IntegerField()
    platform_fee_rate = serializers.CharField()
    lines = ReportLineOut(many=True)
    unmatched = UnmatchedOut(many=True)
    not_gpus = UnmatchedOut(
        many=True, required=False, help_text="Mining ASICs (Antminer, Whatsminer, …): not GPUs, counted nowhere"
    )
    not_gpu_units = serializers.IntegerField(required=False, help_text="Units listed in not_gpus")
    models = ModelSummaryOut(many=True)
    earnings = EarningsOut()
    upgrade_path = UpgradePathOut()
    assumptions = serializers.ListField(child=serializers.CharField())


class FleetAssessmentSummaryOut(serializers.ModelSerializer[FleetAssessment]):
    qualifying_share = serializers.SerializerMethodField()

    class Meta:
        model = FleetAssessment
        fields = ["id", "created_at", "utilisation", "total_gpus", "qualifying_gpus", "qualifying_share"]

    def get_qualifying_share(self, obj: FleetAssessment) -> float:
        return round(obj.qualifying_share, 4)


def assessment_payload(assessment: FleetAssessment) -> dict[str, Any]:
    return dict(
        FleetAssessmentOut({"id": assessment.pk, "created_at": assessment.created_at, **assessment.report}).data
    )


def _provider(request: Request) -> Provider:
    return request.user.provider  # type: ignore[union-attr]


class FleetAssessmentListView(generics.ListAPIView[FleetAssessment]):
    """A provider's fleet assessments; POST a fleet (multipart `file` CSV or JSON `lines`) to assess it."""

    permission_classes = [IsProvider]
    parser_classes = [JsonBodyParser, MultiPartParser]
    serializer_class = FleetAssessmentSummaryOut
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet[FleetAssessment]:
        return fleet_assessment_list(provider=_provider(self.request))

    @extend_schema(
        operation_id="fleet_assessments_list", responses={200: FleetAssessmentSummaryOut(many=True), **AUTH_ERRORS}
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="fleet_assessments_create",
        request={"application/json": FleetAssessmentIn, "multipart/form-data": FleetAssessmentIn},
        responses={201: FleetAssessmentOut, **BAD_REQUEST, **AUTH_ERRORS, **TOO_LARGE},
    )
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Before authentication: session auth's CSRF check would otherwise parse the body.
        if request.method == "POST":
            request_body_size_check(content_length=request.META.get("CONTENT_LENGTH"))
        super().initial(request, *args, **kwargs)

    def post(self, request: Request) -> Response:
        data = FleetAssessmentIn(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data.get("file")
        lines_in = data.validated_data.get("lines")
        if upload is not None and lines_in is not None:
            raise ValidationFailed("Send either a CSV `file` or JSON `lines`, not both.")
        if upload is not None:
            upload_size_check(size=upload.size)
            lines = parse_fleet_csv(data=upload.read(max_upload_bytes() + 1))
        elif lines_in is not None:
            lines = [(line["model"], line["count"]) for line in lines_in]
        else:
            raise ValidationFailed("Send a CSV as multipart `file`, or JSON `lines`: [{model, count}, ...].")
        assessment = fleet_assess(
            provider=_provider(request),
            lines=lines,
            utilisation=data.validated_data.get("utilisation", DEFAULT_UTILISATION),
        )
        return Response(assessment_payload(assessment), status=status.HTTP_201_CREATED)


class FleetAssessmentDetailView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        operation_id="fleet_assessments_retrieve", responses={200: FleetAssessmentOut, **AUTH_ERRORS, **NOT_FOUND}
    )
    def get(self, request: Request, assessment_id: int) -> Response:
        assessment = fleet_assessment_get(provider=_provider(request), assessment_id=assessment_id)
        return Response(assessment_payload(assessment))
