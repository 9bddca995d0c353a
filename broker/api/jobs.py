"""Jobs and quotes over the API (customers only; each customer sees and changes only its own jobs)."""

from dataclasses import asdict
from decimal import Decimal
from typing import Any

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.api.offers import OfferOut
from broker.models import Job, JobMode, JobState
from broker.selectors.jobs import job_get, job_list, job_view
from broker.services.jobs import job_book_ex, job_cancel
from broker.services.quotes import Quote, job_quote
from common.api import IsCustomer, Pagination
from common.api_schema import error_responses, paginated
from common.errors import ValidationFailed
from common.money import from_micros
from marketplace.models import Region, Tier


def _dollars(micros: int | None) -> str | None:
    return None if micros is None else format(from_micros(micros=micros), "f")


# ---------------------------------------------------------------- input


class RequirementsIn(serializers.Serializer[dict[str, Any]]):
    """Job requirements, mode and price (shared by quotes and bookings). Validated by the booking service."""

    gpu_count = serializers.IntegerField(min_value=1, max_value=64)
    min_gpu_ram = serializers.DecimalField(max_digits=8, decimal_places=1, required=False, allow_null=True)
    gpu_models = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, help_text="GPU catalog slugs, e.g. rtx-4090"
    )
    min_compute_cap = serializers.DecimalField(max_digits=3, decimal_places=1, required=False, allow_null=True)
    min_tier = serializers.ChoiceField(choices=Tier.choices, required=False, allow_blank=True)
    regions = serializers.ListField(child=serializers.ChoiceField(choices=Region.choices), required=False)
    min_reliability = serializers.DecimalField(
        max_digits=5, decimal_places=4, min_value=Decimal(0), max_value=Decimal(1), required=False, allow_null=True
    )
    verified_only = serializers.BooleanField(required=False, default=True)
    min_inet_down = serializers.IntegerField(min_value=0, required=False, allow_null=True, help_text="Mbit/s")
    min_cpu_cores_per_gpu = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    min_ram_gb_per_gpu = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    min_disk_gb_per_gpu = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    mode = serializers.ChoiceField(choices=JobMode.choices, required=False, default=JobMode.ON_DEMAND)
    max_price = serializers.CharField(
        required=False, allow_null=True, help_text='Dollars per GPU-hour (on_demand and reserved), e.g. "2.50"'
    )
    bid = serializers.CharField(required=False, allow_null=True, help_text="Dollars per GPU-hour (interruptible)")
    earliest_start = serializers.DateTimeField(required=False, allow_null=True, help_text="Reserved: window start")
    latest_start = serializers.DateTimeField(required=False, allow_null=True, help_text="Reserved: window end")
    duration_hours = serializers.CharField(required=False, help_text="Hours, > 0 and <= 720 (decimal)")


class JobIn(RequirementsIn):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    image = serializers.CharField(max_length=300, help_text="Container image")
    command = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    env = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    ports = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=65535), required=False)
    duration_hours = serializers.CharField(help_text="Hours, > 0 and <= 720 (decimal)")


def _service_data(request: Request, serializer_class: type[serializers.Serializer[Any]]) -> dict[str, Any]:
    """Check the JSON shape with the documented serializer, then hand the raw values to the service,
    which owns the full validation (the same for the API, the portal and the CLI)."""
    if not isinstance(request.data, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    serializer_class(data=request.data).is_valid(raise_exception=True)
    if isinstance(request.data, QueryDict):  # form-encoded: one value per field, not Django's lists
        return request.data.dict()
    return dict(request.data)


# ---------------------------------------------------------------- output


class PriceRangeOut(serializers.Serializer[dict[str, Any]]):
    min = serializers.CharField(allow_null=True)
    max = serializers.CharField(allow_null=True)


class QuoteOut(serializers.Serializer[dict[str, Any]]):
    matching_nodes = serializers.IntegerField(help_text="Nodes that could start the job now")
    price_range = PriceRangeOut(help_text="Dollars per GPU-hour across matching nodes")
    cheapest = OfferOut(many=True)
    estimated_start = serializers.DateTimeField(allow_null=True)
    estimated_start_reason = serializers.CharField()
    max_cost = serializers.CharField(allow_null=True, help_text="Dollars the booking will hold in escrow")
    gpu_count = serializers.IntegerField()
    mode = serializers.CharField()
    duration_hours = serializers.CharField(allow_null=True)


def quote_data(quote: Quote) -> dict[str, Any]:
    return {
        "matching_nodes": quote.matching_nodes,
        "price_range": {
            "min": None if quote.price_min is None else format(quote.price_min, "f"),
            "max": None if quote.price_max is None else format(quote.price_max, "f"),
        },
        "cheapest": [dict(OfferOut(asdict(o)).data) for o in quote.cheapest],
        "estimated_start": None if quote.estimated_start is None else quote.estimated_start.isoformat(),
        "estimated_start_reason": quote.estimated_start_reason,
        "max_cost": _dollars(quote.max_cost_micros),
        "gpu_count": quote.gpu_count,
        "mode": quote.mode,
        "duration_hours": None if quote.duration_seconds is None else _hours(quote.duration_seconds),
    }


def _hours(seconds: int) -> str:
    return format((Decimal(seconds) / 3600).quantize(Decimal("0.0001")).normalize(), "f")


class EventOut(serializers.Serializer[dict[str, Any]]):
    at = serializers.DateTimeField()
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    note = serializers.CharField()


class LeaseOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    state = serializers.CharField()
    node_id = serializers.IntegerField()
    node_name = serializers.CharField()
    region = serializers.CharField()
    country = serializers.CharField()
    gpu_model = serializers.CharField()
    gpu_count = serializers.IntegerField()
    gpu_slots = serializers.ListField(child=serializers.IntegerField())
    price = serializers.CharField(help_text="Dollars per GPU-hour")
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()


class JobOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=JobState.choices)
    mode = serializers.ChoiceField(choices=JobMode.choices)
    requirements = serializers.DictField()
    workload = serializers.DictField()
    gpu_count = serializers.IntegerField()
    duration_hours = serializers.CharField()
    max_price = serializers.CharField(allow_null=True, help_text="Dollars per GPU-hour")
    bid = serializers.CharField(allow_null=True, help_text="Dollars per GPU-hour")
    earliest_start = serializers.DateTimeField(allow_null=True)
    latest_start = serializers.DateTimeField(allow_null=True)
    held = serializers.CharField(help_text="Dollars held in escrow for this job")
    cost_so_far = serializers.CharField(help_text="Dollars charged so far (settled usage)")
    pending_reason = serializers.CharField()
    lease = LeaseOut(allow_null=True)
    timeline = EventOut(many=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def job_data(job: Job) -> dict[str, Any]:
    view = job_view(job=job)
    lease = view.lease
    return {
        "id": job.pk,
        "name": job.name,
        "state": job.state,
        "mode": job.mode,
        "requirements": {
            "gpu_count": job.gpu_count,
            "min_gpu_ram": None if job.min_gpu_ram is None else format(job.min_gpu_ram, "f"),
            "gpu_models": sorted(m.slug for m in job.gpu_models.all()),
            "min_compute_cap": None if job.min_compute_cap is None else format(job.min_compute_cap, "f"),
            "min_tier": job.min_tier,
            "regions": job.regions,
            "min_reliability": job.min_reliability,
            "verified_only": job.verified_only,
            "min_inet_down": job.min_inet_down,
            "min_cpu_cores_per_gpu": job.min_cpu_cores_per_gpu,
            "min_ram_gb_per_gpu": job.min_ram_gb_per_gpu,
            "min_disk_gb_per_gpu": job.min_disk_gb_per_gpu,
        },
        "workload": {"image": job.image, "command": job.command, "env": job.env, "ports": job.ports},
        "gpu_count": job.gpu_count,
        "duration_hours": _hours(job.duration_seconds),
        "max_price": _dollars(job.max_price_micros),
        "bid": _dollars(job.bid_micros),
        "earliest_start": job.earliest_start.isoformat() if job.earliest_start else None,
        "latest_start": job.latest_start.isoformat() if job.latest_start else None,
        "held": _dollars(job.held_micros),
        "cost_so_far": _dollars(view.cost_so_far_micros),
        "pending_reason": job.pending_reason,
        "lease": None
        if lease is None
        else {
            "id": lease.pk,
            "state": lease.state,
            "node_id": lease.node_id,
            "node_name": lease.node.name,
            "region": lease.node.region,
            "country": lease.node.country,
            "gpu_model": lease.node.gpu_model.name,
            "gpu_count": lease.gpu_count,
            "gpu_slots": list(lease.gpu_slots),
            "price": _dollars(lease.price_micros),
            "starts_at": lease.starts_at.isoformat(),
            "ends_at": lease.ends_at.isoformat(),
        },
        "timeline": [
            {"at": e.at.isoformat(), "from_state": e.from_state, "to_state": e.to_state, "note": e.note}
            for e in job.events.all()
        ],
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
    }


# ---------------------------------------------------------------- views


class QuoteView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="quotes_create",
        request=RequirementsIn,
        responses={
            200: QuoteOut,
            **error_responses(
                400, 401, 403, d400="Invalid requirements, or requirements no listed node can ever meet (with the max)"
            ),
        },
        tags=["jobs"],
    )
    def post(self, request: Request) -> Response:
        data = _service_data(request, RequirementsIn)
        quote = job_quote(customer=request.user.customer, requirements=data)  # type: ignore[union-attr]
        return Response(quote_data(quote))


class JobListCreateView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="jobs_list",
        responses={200: paginated(JobOut), **error_responses(401, 403)},
        tags=["jobs"],
    )
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(job_list(customer=request.user.customer), request, view=self)  # type: ignore[union-attr]
        return paginator.get_paginated_response([job_data(job) for job in page or []])

    @extend_schema(
        operation_id="jobs_create",
        request=JobIn,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="A repeat with the same key returns the same job (200) and holds nothing again; "
                "the same key with a different body is a 409.",
            )
        ],
        responses={
            201: JobOut,
            200: JobOut,
            **error_responses(
                400,
                401,
                402,
                403,
                409,
                d400="Invalid booking, or requirements no listed node can ever meet (names the requirement and max)",
                d409="Idempotency-Key already used for a different booking",
            ),
        },
        tags=["jobs"],
    )
    def post(self, request: Request) -> Response:
        data = _service_data(request, JobIn)
        job, created = job_book_ex(
            customer=request.user.customer,  # type: ignore[union-attr]
            data=data,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        job = job_get(customer=request.user.customer, job_id=job.pk)  # type: ignore[union-attr]
        return Response(job_data(job), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class JobDetailView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="jobs_retrieve", responses={200: JobOut, **error_responses(401, 403, 404)}, tags=["jobs"]
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = job_get(customer=request.user.customer, job_id=job_id)  # type: ignore[union-attr]
        return Response(job_data(job))


class JobCancelView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="jobs_cancel",
        request=None,
        responses={200: JobOut, **error_responses(401, 403, 404, 409, d409="The job already ended or was cancelled")},
        tags=["jobs"],
    )
    def post(self, request: Request, job_id: int) -> Response:
        customer = request.user.customer  # type: ignore[union-attr]
        job = job_cancel(job=job_get(customer=customer, job_id=job_id), customer=customer)
        return Response(job_data(job_get(customer=customer, job_id=job.pk)))
