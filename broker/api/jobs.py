"""Jobs and quotes over the API (customers only; each customer sees and changes only its own jobs)."""

from dataclasses import asdict
from typing import Any

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.api.offers import OfferOut
from broker.jobspec import FIELDS, QUOTE_FIELDS, Field, JobSpec, Need
from broker.jobspec_kinds import Choice, Count, Env, Flag, Money, Names, Number, Ports, Text, When
from broker.models import Job, JobState
from broker.selectors.connect import job_connect
from broker.selectors.job_logs import LOG_PAGE_MAX, job_for_reader, job_log_page, parse_after
from broker.selectors.jobs import job_get, job_list, job_view
from broker.services.jobs import job_book_ex, job_cancel
from broker.services.quotes import Quote, job_quote
from common.api import IsCustomer, IsStaff, Pagination
from common.api_schema import error_responses, paginated
from common.errors import ValidationFailed
from common.money import from_micros
from common.numbers import DecimalNumberField


def _dollars(micros: int | None) -> str | None:
    return None if micros is None else format(from_micros(micros=micros), "f")


# ---------------------------------------------------------------- input
# The request serializers document the JobSpec fields (generated from broker/jobspec.py, bounds from each field's
# kind) and check the JSON shape; JobSpec.from_payload then validates the raw values, the same for the API, the
# portal and the CLI.

_REQUEST_DOC = "Job requirements, mode and price (shared by quotes and bookings). Validated by the booking service."


def _in_field(f: Field, *, booking: bool) -> serializers.Field[Any, Any, Any, Any]:  # noqa: C901 — to split into named steps
    kind, required = f.kind, f.need is Need.ALWAYS or (booking and f.need is Need.BOOKING)
    required = required and f.part != "workload"  # a template may fill the workload; JobSpec checks it after
    opt: dict[str, Any] = {"required": required, **({"help_text": f.doc} if f.doc else {})}
    if isinstance(kind, Count):
        return serializers.IntegerField(min_value=kind.low, max_value=kind.high, **opt, allow_null=not required)
    if isinstance(kind, Number):
        return DecimalNumberField(
            max_digits=kind.digits,
            decimal_places=kind.places,
            min_value=kind.low,
            max_value=kind.high,
            allow_null=True,
            **opt,
        )
    if isinstance(kind, Names):
        child = (
            serializers.ChoiceField(choices=kind.choices)
            if kind.choices
            else serializers.CharField(max_length=kind.max_length)
        )
        return serializers.ListField(child=child, **opt)
    if isinstance(kind, Choice):
        if kind.initial:
            return serializers.ChoiceField(choices=kind.choices, default=kind.initial, **opt)
        return serializers.ChoiceField(choices=kind.choices, allow_blank=True, **opt)
    if isinstance(kind, Flag):
        return serializers.BooleanField(default=kind.initial, **opt)
    if isinstance(kind, Money):
        return serializers.CharField(allow_null=True, **opt)
    if isinstance(kind, When):
        return serializers.DateTimeField(allow_null=True, **opt)
    if isinstance(kind, Text):
        return serializers.CharField(max_length=kind.max_length, allow_blank=not required, **opt)
    if isinstance(kind, Env):
        return serializers.DictField(child=serializers.CharField(allow_blank=True), **opt)
    if isinstance(kind, Ports):
        return serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=65535), **opt)
    return serializers.CharField(**opt)  # Hours: a decimal string


def _request_serializer(name: str, *, booking: bool) -> type[serializers.Serializer[dict[str, Any]]]:
    fields = FIELDS if booking else QUOTE_FIELDS
    attrs: dict[str, Any] = {f.key: _in_field(f, booking=booking) for f in fields}
    return type(name, (serializers.Serializer,), {**attrs, "__doc__": _REQUEST_DOC, "__module__": __name__})


RequirementsIn = _request_serializer("RequirementsIn", booking=False)
JobIn = _request_serializer("JobIn", booking=True)


def spec_from_request(request: Request, *, booking: bool) -> JobSpec:
    """Check the JSON shape with the documented serializer, then build the JobSpec from the raw values."""
    if not isinstance(request.data, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    (JobIn if booking else RequirementsIn)(data=request.data).is_valid(raise_exception=True)
    if isinstance(request.data, QueryDict):  # form-encoded: one value per field, not Django's lists
        return JobSpec.from_payload(request.data.dict(), booking=booking)
    return JobSpec.from_payload(dict(request.data), booking=booking)


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
    terms = quote.spec.to_json("terms")
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
        "gpu_count": quote.spec.requirements.gpu_count,
        "mode": terms["mode"],
        "duration_hours": terms["duration_hours"],
    }


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


class SshOut(serializers.Serializer[dict[str, Any]]):
    command = serializers.CharField(help_text='e.g. "ssh -p 40022 root@203.0.113.5"')
    args = serializers.ListField(child=serializers.CharField(), help_text="ssh's arguments")
    user = serializers.CharField()
    host = serializers.CharField()
    port = serializers.IntegerField()


class ConnectUrlOut(serializers.Serializer[dict[str, Any]]):
    port = serializers.IntegerField(help_text="Container port")
    host_port = serializers.IntegerField(help_text="Port on the node's public address")
    name = serializers.CharField(help_text='What listens there, e.g. "Jupyter Lab"')
    url = serializers.CharField()


class ConnectOut(serializers.Serializer[dict[str, Any]]):
    host = serializers.CharField(allow_null=True, help_text="The node's public address")
    ssh = SshOut(allow_null=True)
    urls = ConnectUrlOut(many=True)
    note = serializers.CharField()


def _out_field(f: Field) -> serializers.Field[Any, Any, Any, Any]:
    """A job's term as the API writes it (JobSpec.to_json)."""
    if isinstance(f.kind, Choice):
        return serializers.ChoiceField(choices=f.kind.choices)
    if isinstance(f.kind, Money):
        return serializers.CharField(allow_null=True, help_text="Dollars per GPU-hour")
    if isinstance(f.kind, When):
        return serializers.DateTimeField(allow_null=True)
    return serializers.CharField()  # Hours


JobOut: type[serializers.Serializer[dict[str, Any]]] = type(
    "JobOut",
    (serializers.Serializer,),
    {
        "__module__": __name__,
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "state": serializers.ChoiceField(choices=JobState.choices),
        "requirements": serializers.DictField(),
        "workload": serializers.DictField(),
        "gpu_count": serializers.IntegerField(),
        **{f.key: _out_field(f) for f in FIELDS if f.part == "terms"},
        "held": serializers.CharField(help_text="Dollars held in escrow for this job"),
        "cost_so_far": serializers.CharField(help_text="Dollars charged so far (settled usage)"),
        "pending_reason": serializers.CharField(),
        "quarantine_reason": serializers.CharField(help_text="Why a match round set the job aside (quarantined)"),
        "phase": serializers.CharField(
            help_text="Workload phase the agent reports: pulling, starting, running, exited"
        ),
        "exit_code": serializers.IntegerField(allow_null=True, help_text="The workload's exit code, once it ended"),
        "end_reason": serializers.CharField(
            help_text="Why it stopped: exited, oom, image_pull_failed, start_failed, stopped, lease_ended"
        ),
        "lease": LeaseOut(allow_null=True),
        "connect": ConnectOut(
            allow_null=True,
            help_text="How to reach the running workload (SSH command, a URL per HTTP port); null until the agent "
            "reports its ports",
        ),
        "timeline": EventOut(many=True),
        "created_at": serializers.DateTimeField(),
        "updated_at": serializers.DateTimeField(),
    },
)


def job_data(job: Job, *, cost_so_far_micros: int | None = None) -> dict[str, Any]:
    view = job_view(job=job, cost_so_far_micros=cost_so_far_micros)
    lease = view.lease
    spec = JobSpec.from_job(job)
    return {
        "id": job.pk,
        "name": job.name,
        "state": job.state,
        "requirements": spec.to_json("requirements"),
        "workload": spec.to_json("workload"),
        "gpu_count": job.gpu_count,
        **spec.to_json("terms"),
        "held": _dollars(job.held_micros),
        "cost_so_far": _dollars(view.cost_so_far_micros),
        "pending_reason": job.pending_reason,
        "quarantine_reason": job.quarantine_reason,
        "phase": job.phase,
        "exit_code": job.exit_code,
        "end_reason": job.end_reason,
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
        "connect": job_connect(job=job, lease=lease),
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
        spec = spec_from_request(request, booking=False)
        quote = job_quote(customer=request.user.customer, requirements=spec)  # type: ignore[union-attr]
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
        spec = spec_from_request(request, booking=True)
        job, created = job_book_ex(
            customer=request.user.customer,  # type: ignore[union-attr]
            data=spec,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        if not created:  # a replay: the job as it is now
            job = job_get(customer=request.user.customer, job_id=job.pk)  # type: ignore[union-attr]
            return Response(job_data(job), status=status.HTTP_200_OK)
        # just booked: its relations come loaded from the service and nothing is charged yet (no read-back)
        return Response(job_data(job, cost_so_far_micros=0), status=status.HTTP_201_CREATED)


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


class LogLineOut(serializers.Serializer[dict[str, Any]]):
    seq = serializers.IntegerField(help_text="Order of the line in the job's log; read on with ?after=SEQ")
    at = serializers.DateTimeField()
    stream = serializers.ChoiceField(choices=["stdout", "stderr"])
    text = serializers.CharField()


class LogPageOut(serializers.Serializer[dict[str, Any]]):
    lines = LogLineOut(many=True)
    next = serializers.IntegerField(help_text="Pass as `after` for the lines that follow")


class JobLogsView(APIView):
    permission_classes = [IsCustomer | IsStaff]

    @extend_schema(
        operation_id="jobs_logs",
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, description="Only lines after this seq (the last `next`)"),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"At most this many lines (≤ {LOG_PAGE_MAX})"),
        ],
        responses={200: LogPageOut, **error_responses(400, 401, 403, 404)},
        tags=["jobs"],
        description=(
            "The workload's stdout and stderr as the agent shipped them (the server keeps the last "
            "RIGSHIFT_JOB_LOG_MAX_LINES lines of each job, 5,000 by default). Only the job's customer and staff "
            "can read it; note that the provider's machine runs the workload and can see it."
        ),
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = job_for_reader(user=request.user, job_id=job_id)
        limit = parse_after(request.query_params.get("limit")) or LOG_PAGE_MAX
        page = job_log_page(job=job, after=parse_after(request.query_params.get("after")), limit=limit)
        return Response(LogPageOut({"lines": page.lines, "next": page.next}).data)
