"""Per-user API tokens: exchange username and password for a bearer token."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import DomainError
from common.services import api_token_create


class TokenIn(serializers.Serializer[dict[str, str]]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=200, trim_whitespace=False)


class TokenOut(serializers.Serializer[dict[str, str]]):
    token = serializers.CharField()


class BadCredentials(DomainError):
    status_code = 400
    code = "bad_credentials"


class TokenObtainView(APIView):
    """Anyone may ask; only a correct username and password get a token (shown once)."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(request=TokenIn, responses={201: TokenOut})
    def post(self, request: Request) -> Response:
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request._request, username=data.validated_data["username"], password=data.validated_data["password"]
        )
        if user is None:
            raise BadCredentials("Unable to log in with the given username and password.")
        _, raw = api_token_create(user=user, name="api")
        return Response({"token": raw}, status=status.HTTP_201_CREATED)
