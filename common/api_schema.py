"""OpenAPI helpers: the error body every 4xx has (see common.api.exception_handler)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

_DESCRIPTIONS = {
    400: "Invalid input: `detail` says which field or clause and what is allowed",
    401: "Missing or invalid API token",
    402: "The wallet cannot cover it: `errors.shortfall` has the shortfall in dollars",
    403: "Wrong role for this endpoint",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state",
    413: "Payload too large",
}


class ErrorOut(serializers.Serializer[dict[str, Any]]):
    detail = serializers.CharField(help_text="A clear, human-readable message")
    code = serializers.CharField(help_text="A stable machine-readable code")
    errors = serializers.JSONField(  # type: ignore[assignment]  # the metaclass pops declared fields
        required=False, help_text="Per-field errors or details, when any"
    )


def error_responses(*statuses: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """`{status: OpenApiResponse(ErrorOut)}` for each status; override a description with `d400="..."`."""
    return {
        code: OpenApiResponse(ErrorOut, description=descriptions.get(f"d{code}", _DESCRIPTIONS.get(code, "Error")))
        for code in statuses
    }


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Bearer rs_…` (common.auth.ApiTokenAuthentication) for drf-spectacular."""

    target_class = "common.auth.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "Per-user API token `rs_…`"}


def paginated(serializer_class: type[serializers.Serializer[Any]], *, name: str | None = None) -> Any:
    """The schema of a `common.api.Pagination` page of `serializer_class` items, for an APIView that paginates
    by hand (drf-spectacular only sees pagination on generic views): `{count, next, previous, results}`."""
    from drf_spectacular.utils import inline_serializer

    return inline_serializer(
        name=name or f"Paginated{serializer_class.__name__}List",
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )
