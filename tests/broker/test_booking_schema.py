import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

PATHS = [
    "/api/v1/customers/signup/",
    "/api/v1/offers/",
    "/api/v1/quotes/",
    "/api/v1/jobs/",
    "/api/v1/jobs/{job_id}/",
    "/api/v1/jobs/{job_id}/cancel/",
    "/api/v1/wallet/",
    "/api/v1/wallet/topups/",
]


def test_schema_documents_booking_endpoints_with_error_responses(tmp_path: object) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in PATHS:
        assert path in schema["paths"], path
    jobs_post = schema["paths"]["/api/v1/jobs/"]["post"]["responses"]
    assert {"201", "400", "401", "402", "403", "409"} <= set(jobs_post)
    cancel = schema["paths"]["/api/v1/jobs/{job_id}/cancel/"]["post"]["responses"]
    assert {"200", "404", "409"} <= set(cancel)
    assert "400" in schema["paths"]["/api/v1/offers/"]["get"]["responses"]


def test_spectacular_validates_without_warnings(tmp_path: object) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", f"{tmp_path}/schema.yaml")
