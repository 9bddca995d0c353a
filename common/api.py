"""API plumbing: the one exception handler, pagination, role permissions, and lists written without a serializer
per request (`represent_many`)."""

import threading
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, pagination, permissions, serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from common.errors import DomainError

_bound: dict[type, list[Any]] = {}
_bound_lock = threading.Lock()


def represent_many(
    serializer_class: type[serializers.Serializer[Any]], instances: Iterable[Any]
) -> list[dict[str, Any]]:
    """What `serializer_class(instances, many=True).data` gives, for serializers whose fields need no context.

    A serializer instance deep-copies (for a ModelSerializer, rebuilds from the model) all its fields; on a hot list
    endpoint that was a large part of the request. Here the readable fields are bound once per class (one instance,
    whose fields keep no per-call state) and each row is written as `Serializer.to_representation` does."""
    fields = _bound.get(serializer_class)
    if fields is None:
        with _bound_lock:
            fields = _bound.setdefault(serializer_class, list(serializer_class()._readable_fields))
    rows = []
    for instance in instances:
        row: dict[str, Any] = {}
        for field in fields:
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            row[field.field_name] = None if check is None else field.to_representation(attribute)
        rows.append(row)
    return rows


class Pagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        parts = [f"{key}: {_flatten(value)}" for key, value in detail.items()]
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map domain errors and DRF errors to `{"detail": message, "code": code, ...}` with a 4xx."""
    if isinstance(exc, DomainError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if exc.details is not None:
            body["errors"] = exc.details
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": _flatten(exc.detail), "code": "invalid", "errors": exc.detail}
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {"detail": _flatten(exc.detail), "code": codes if isinstance(codes, str) else "error"}
    return response


class IsProvider(permissions.BasePermission):
    message = "Only provider accounts may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and hasattr(request.user, "provider"))


class IsCustomer(permissions.BasePermission):
    message = "Only customer accounts may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and hasattr(request.user, "customer"))


class IsStaff(permissions.BasePermission):
    message = "Staff only."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
