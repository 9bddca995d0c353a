"""`POST /webhooks/stripe/`: Stripe's calls, verified by signature (no session, no CSRF token, no API token)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.services.stripe_webhooks import stripe_webhook_handle


class StripeWebhookView(APIView):
    authentication_classes: list[type] = []  # Stripe signs the body; no session, hence no CSRF
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Stripe webhook",
        description="Verified with the Stripe-Signature header (300 s tolerance); a repeated event id is a no-op.",
        request={"application/json": {"type": "object"}},
        responses={
            200: inline_serializer(
                "StripeWebhookResult", {"received": serializers.BooleanField(), "outcome": serializers.CharField()}
            ),
            400: OpenApiResponse(description="Missing, forged or stale signature, or invalid payload"),
        },
        tags=["billing"],
    )
    def post(self, request: Request) -> Response:
        outcome = stripe_webhook_handle(payload=request.body, signature=request.META.get("HTTP_STRIPE_SIGNATURE", ""))
        return Response({"received": True, "outcome": outcome})
