"""A lost database connection mid-request answers 503 + Retry-After with a clear message, never 500."""

from typing import Any

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import RequestFactory

from common.db_unavailable import DatabaseUnavailableMiddleware, database_error_is_transient

BOOKING = {"image": "ghcr.io/x/y:1", "gpu_count": 1, "duration_hours": "1", "max_price": "1.00"}


@pytest.mark.django_db
def test_a_booking_whose_connection_was_dropped_answers_503_with_retry_after(
    customer_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dropped(**kwargs: Any) -> Any:
        if connection.vendor == "sqlite":
            raise OperationalError("database is locked")
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr("broker.api.jobs.job_book_ex", dropped)
    response = customer_client.post("/api/v1/jobs/", BOOKING, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json()["code"] == "database_unavailable"
    assert "retry" in response.json()["detail"].lower()


def test_pages_get_a_plain_503_and_other_errors_are_left_alone() -> None:
    middleware = DatabaseUnavailableMiddleware(lambda request: None)  # type: ignore[return-value]
    response = middleware.process_exception(RequestFactory().get("/app/"), InterfaceError("connection already closed"))
    assert response is not None and response.status_code == 503 and response["Retry-After"] == "2"
    assert middleware.process_exception(RequestFactory().get("/app/"), ValueError("bug")) is None
    assert not database_error_is_transient(exc=KeyError("x"))
