"""The one JSON body parser: every API endpoint (DRF's default parser) and every non-DRF view that reads JSON.

Limits, checked before `json` recurses or allocates anything big:

- size: at most `RIGSHIFT_JSON_MAX_BYTES` (default 1 MiB): a larger body is a 413 `too_large`, as JSON,
  also with DEBUG on (it is a `DomainError`, rendered by the API exception handler);
- nesting: at most `RIGSHIFT_JSON_MAX_DEPTH` (default 32) levels of arrays/objects: deeper is a 400
  `bad_json` (50,000 `[` used to be a `RecursionError`, a 500, on every JSON endpoint);
- content: malformed JSON, bad UTF-8, `NaN`/`Infinity` constants, numbers that overflow a float
  (`1e999999999`) and integers longer than 4,300 digits are a 400 `bad_json` naming what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import IO, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.parsers import BaseParser

from common.errors import PayloadTooLarge, ValidationFailed

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def json_max_bytes() -> int:
    return int(getattr(settings, "RIGSHIFT_JSON_MAX_BYTES", DEFAULT_MAX_BYTES))


def json_max_depth() -> int:
    return int(getattr(settings, "RIGSHIFT_JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH))


def _bad(message: str) -> ValidationFailed:
    return ValidationFailed(f"Malformed JSON body: {message}", code="bad_json")


def too_large(*, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the limit of {limit:,} bytes.", code="too_large")


def json_depth_check(text: str, *, max_depth: int) -> None:
    """Raise a 400 when arrays/objects nest deeper than `max_depth` (strings are skipped, not counted)."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                raise _bad(f"nested deeper than {max_depth} levels.")
        else:
            depth -= 1


def _constant(name: str) -> Any:
    raise _bad(f"{name} is not a number JSON allows.")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _bad(f"the number {text[:20]} is out of range.")
    return value


def json_parse(raw: bytes | str, *, max_bytes: int | None = None, max_depth: int | None = None) -> Any:
    """Bytes (UTF-8) or text → the parsed value, within the limits; else ValidationFailed/PayloadTooLarge."""
    limit = json_max_bytes() if max_bytes is None else max_bytes
    if len(raw) > limit:
        raise too_large(limit=limit)
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise _bad("not UTF-8.") from None
    json_depth_check(text, max_depth=json_max_depth() if max_depth is None else max_depth)
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float)
    except ValidationFailed:
        raise
    except RecursionError:
        raise _bad("nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, and int() past 4,300 digits
        raise _bad(str(exc)[:200]) from None


def json_read(stream: IO[bytes], *, content_length: str | None) -> Any:
    """Read at most the limit + 1 bytes of a request stream and parse it (the limit is checked before reading
    when the client declared a Content-Length)."""
    limit = json_max_bytes()
    try:
        declared = int(content_length or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large(limit=limit)
    raw = stream.read(limit + 1) if stream is not None else b""
    if not raw:
        raise _bad("the body is empty.")
    return json_parse(raw, max_bytes=limit)


class JsonBodyParser(BaseParser):
    """DRF's parser for `application/json` (the REST_FRAMEWORK default), with the limits above."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        meta = getattr(request, "META", {}) if request is not None else {}
        return json_read(stream, content_length=meta.get("CONTENT_LENGTH"))


class JsonBodyLimitMiddleware:
    """A JSON request whose declared Content-Length is over the limit gets the 413 as JSON before any view
    or middleware reads the body (with DEBUG on too, where Django would render its HTML error page)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.content_type == "application/json":
            limit = json_max_bytes()
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                exc = too_large(limit=limit)
                return JsonResponse({"detail": exc.message, "code": exc.code}, status=exc.status_code)
        return self.get_response(request)
