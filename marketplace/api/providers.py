"""Provider signup API."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.countries import PAYOUT_CURRENCIES
from marketplace.models import Provider
from marketplace.services.providers import provider_signup

ERROR = inline_serializer("ProviderError", fields={"detail": serializers.CharField(), "code": serializers.CharField()})


class ProviderSignupInput(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(write_only=True, trim_whitespace=False)
    email = serializers.EmailField()
    company = serializers.CharField(max_length=200)
    contact_name = serializers.CharField(max_length=200)
    country = serializers.CharField(max_length=2, min_length=2, help_text="ISO 3166-1 alpha-2, e.g. DE")
    payout_currency = serializers.ChoiceField(choices=list(PAYOUT_CURRENCIES), default="USD")


class ProviderOutput(serializers.ModelSerializer[Provider]):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)

    class Meta:
        model = Provider
        fields = [
            "id",
            "username",
            "email",
            "company",
            "contact_name",
            "country",
            "payout_currency",
            "payout_account_ready",
            "created_at",
        ]
        read_only_fields = fields


class ProviderSignupOutput(serializers.Serializer[Any]):
    token = serializers.CharField(help_text="API token (Bearer); shown once")
    provider = ProviderOutput()


class ProviderSignupApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []  # public; no session, so no CSRF needed

    @extend_schema(
        operation_id="provider_signup",
        request=ProviderSignupInput,
        responses={
            201: ProviderSignupOutput,
            400: OpenApiResponse(ERROR, description="Bad input or the username is taken"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = ProviderSignupInput(data=request.data)
        data.is_valid(raise_exception=True)
        provider, raw_token = provider_signup(**data.validated_data)
        body = {"token": raw_token, "provider": ProviderOutput(provider).data}
        return Response(body, status=status.HTTP_201_CREATED)
