"""Provider API for price offers (issue 12 point 5): list, accept, decline. The node's own provider only."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.selectors.price_offers import price_offers_for_provider
from broker.services.price_offers import price_offer_accept, price_offer_decline
from common.api import IsProvider
from marketplace.models import Provider


class PriceOfferSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    job_id = serializers.IntegerField()
    node_id = serializers.IntegerField()
    price_micros = serializers.IntegerField(help_text="Offered price per GPU-hour, micro-USD")
    floor_micros = serializers.IntegerField(help_text="Your ask (or minimum bid) when offered")
    reason = serializers.CharField()
    state = serializers.CharField()
    outcome = serializers.CharField()
    lease_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


def _provider(request: Request) -> Provider:
    return request.user.provider  # type: ignore[union-attr]


class PriceOfferListView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(operation_id="provider_offers", tags=["provider"], responses={200: PriceOfferSerializer(many=True)})
    def get(self, request: Request) -> Response:
        offers = price_offers_for_provider(provider=_provider(request))
        return Response(PriceOfferSerializer(offers, many=True).data)


class PriceOfferAcceptView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        operation_id="provider_offer_accept",
        tags=["provider"],
        request=None,
        responses={200: PriceOfferSerializer},
        description="Accept the offer: the job is leased on your node at the offered price (409 when it lapsed).",
    )
    def post(self, request: Request, offer_id: int) -> Response:
        lease = price_offer_accept(offer_id=offer_id, provider=_provider(request))
        assert lease.offer is not None
        return Response(PriceOfferSerializer(lease.offer).data)


class PriceOfferDeclineView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        operation_id="provider_offer_decline", tags=["provider"], request=None, responses={200: PriceOfferSerializer}
    )
    def post(self, request: Request, offer_id: int) -> Response:
        return Response(PriceOfferSerializer(price_offer_decline(offer_id=offer_id, provider=_provider(request))).data)
