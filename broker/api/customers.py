"""Customer signup over the API: returns the account and a bearer token (shown once)."""

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.services.customers import customer_signup
from common.api_schema import error_responses
from marketplace.models import Customer


class SignupIn(serializers.Serializer[dict[str, str]]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=200, trim_whitespace=False, write_only=True)
    email = serializers.EmailField()
    company = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class CustomerOut(serializers.Serializer[Customer]):
    id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    company = serializers.CharField()
    created_at = serializers.DateTimeField()


class SignupOut(serializers.Serializer[dict[str, object]]):
    token = serializers.CharField(help_text="Bearer token, shown once: send `Authorization: Bearer <token>`")
    customer = CustomerOut()


class CustomerSignupView(APIView):
    """Anyone may sign up as a customer; the wallet starts at zero."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        operation_id="customers_signup",
        request=SignupIn,
        responses={201: SignupOut, **error_responses(400, d400="Invalid or taken username, bad email, weak password")},
        tags=["customers"],
    )
    def post(self, request: Request) -> Response:
        data = SignupIn(data=request.data)
        data.is_valid(raise_exception=True)
        customer, token = customer_signup(**data.validated_data)
        return Response({"token": token, "customer": CustomerOut(customer).data}, status=status.HTTP_201_CREATED)
