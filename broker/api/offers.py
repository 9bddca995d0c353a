"""Offer search over the API: `GET /api/v1/offers/?q=…&order=…` (public, like a price list)."""

from dataclasses import asdict
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.selectors.offer_query import FIELDS
from broker.selectors.offers import MAX_LIMIT, Offer, offer_search
from common.api_schema import error_responses
from common.errors import ValidationFailed
from marketplace.services.reliability import RELIABILITY_MEANING


class OfferOut(serializers.Serializer[Any]):
    node_id = serializers.IntegerField()
    node_name = serializers.CharField()
    gpu_name = serializers.CharField()
    gpu_slug = serializers.CharField()
    num_gpus = serializers.IntegerField(help_text="Free GPUs on the node now")
    total_gpus = serializers.IntegerField()
    gpu_ram = serializers.DecimalField(max_digits=8, decimal_places=1, help_text="GB per GPU")
    compute_cap = serializers.DecimalField(max_digits=3, decimal_places=1, allow_null=True)
    tier = serializers.CharField()
    region = serializers.CharField()
    country = serializers.CharField()
    reliability = serializers.FloatField(help_text=RELIABILITY_MEANING)
    verified = serializers.BooleanField()
    price = serializers.DecimalField(max_digits=14, decimal_places=6, help_text="Dollars per GPU-hour, on demand")
    min_bid = serializers.DecimalField(
        max_digits=14, decimal_places=6, help_text="Minimum interruptible bid, dollars per GPU-hour"
    )
    dlperf = serializers.FloatField(allow_null=True, help_text="Measured benchmark (TFLOPS)")
    dlperf_per_dollar = serializers.FloatField(allow_null=True)
    inet_down = serializers.IntegerField(help_text="Mbit/s")
    inet_up = serializers.IntegerField(help_text="Mbit/s")
    cpu_cores = serializers.IntegerField(help_text="CPU cores free now (the node's total minus what leases hold)")
    ram = serializers.IntegerField(help_text="GB of RAM free now")
    disk = serializers.IntegerField(help_text="GB of disk free now")
    available_until = serializers.DateTimeField(allow_null=True)
    storage_price = serializers.DecimalField(
        max_digits=14, decimal_places=6, help_text="Dollars per GB-month of storage a lease holds (0 = not charged)"
    )
    egress_price = serializers.DecimalField(
        max_digits=14, decimal_places=6, help_text="Dollars per GB a lease sends out (0 = not charged)"
    )


class OfferListOut(serializers.Serializer[dict[str, Any]]):
    count = serializers.IntegerField()
    results = OfferOut(many=True)


def offer_data(offer: Offer) -> dict[str, Any]:
    return dict(OfferOut(asdict(offer)).data)


_Q_HELP = (
    "Space-separated `field op value` clauses, e.g. `gpu_ram>=24 num_gpus>=2 region in [eu,us] verified==true`. "
    "Operators: < <= == != >= > in notin. Fields: " + ", ".join(FIELDS) + "."
)


class OfferSearchView(APIView):
    """Public: anyone may browse offers (listed, online, non-cordoned nodes with free GPUs now)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        operation_id="offers_search",
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, description=_Q_HELP),
            OpenApiParameter(
                "order", OpenApiTypes.STR, description="A field; prefix `-` for descending. Default `price`."
            ),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"At most {MAX_LIMIT}; default 100."),
        ],
        responses={
            200: OfferListOut,
            **error_responses(400, d400="Malformed query: names the clause and what is allowed"),
        },
        tags=["offers"],
    )
    def get(self, request: Request) -> Response:
        raw_limit = request.query_params.get("limit", "100")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ValidationFailed(f"limit: must be a whole number from 1 to {MAX_LIMIT}.") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed(f"limit: must be a whole number from 1 to {MAX_LIMIT}.")
        offers = offer_search(q=request.query_params.get("q", ""), order=request.query_params.get("order"), limit=limit)
        # One list serializer for the page: building a serializer per offer was half of this endpoint's CPU.
        results = OfferOut([asdict(o) for o in offers], many=True).data
        return Response({"count": len(offers), "results": results})
