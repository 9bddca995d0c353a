"""Domain errors. Services raise these; the API exception handler and the pages map them to 4xx."""

from typing import Any


class DomainError(Exception):
    """A request the domain refuses. Subclasses set the HTTP status and a stable code."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class ValidationFailed(DomainError):
    status_code = 400
    code = "invalid"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class PermissionDenied(DomainError):
    status_code = 403
    code = "forbidden"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class PaymentRequired(DomainError):
    status_code = 402
    code = "insufficient_funds"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "too_large"
