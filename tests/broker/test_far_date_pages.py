"""Issue 12: a job booked before the horizon existed, with a window ending in year 9999, must not break pages."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from broker.models import Job, JobMode
from common.services import api_token_create
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_pages_of_a_year_9999_job_are_not_500() -> None:
    customer: Any = CustomerFactory()
    job = Job.objects.create(
        customer=customer,
        name="far",
        gpu_count=1,
        image="img",
        duration_seconds=3600,
        mode=JobMode.RESERVED,
        earliest_start=datetime(9999, 12, 30, tzinfo=UTC),
        latest_start=datetime(9999, 12, 31, 23, 0, tzinfo=UTC),
    )
    staff = Client(raise_request_exception=False)
    staff.force_login(UserFactory(is_staff=True))
    owner = Client(raise_request_exception=False)
    owner.force_login(customer.user)
    owner_api = Client(
        raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=customer.user)[1]}"
    )
    for client, path in [
        (staff, f"/console/jobs/{job.pk}/"),
        (owner, f"/app/jobs/{job.pk}/"),
        (owner_api, f"/api/v1/jobs/{job.pk}/explain/"),
        (owner_api, f"/api/v1/jobs/{job.pk}/"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
