"""Fleet assessment API: JSON and multipart input, permissions, cross-tenant isolation, bad input → 4xx."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from marketplace.models import FleetAssessment
from tests.conftest import client_for
from tests.factories import UserFactory

URL = "/api/v1/fleet-assessments/"
FARM_JSON = {
    "lines": [
        {"model": "RX580 8GB", "count": 400},
        {"model": "GTX 1070", "count": 300},
        {"model": "rtx 3060ti lhr", "count": 200},
        {"model": "3090", "count": 60},
    ]
}
FARM_CSV = b"model,count\nRX580 8GB,400\nGTX 1070,300\nrtx 3060ti lhr,200\n3090,60\nZotac Mystery Card,5\n"


def _csv(data: bytes, name: str = "fleet.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/csv")


@pytest.mark.django_db
def test_json_fleet_returns_201_with_report(provider_client) -> None:
    response = provider_client.post(URL, {**FARM_JSON, "utilisation": "0.75"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["qualifying_share"] == 0.0625 and body["total_gpus"] == 960 and body["qualifying_gpus"] == 60
    assert body["utilisation"] == "0.750"
    assert body["lines"][3]["slug"] == "rtx-3090" and body["lines"][3]["tier"] == "fine_tuning"
    assert isinstance(body["lines"][3]["monthly_earnings_per_gpu"], str)
    option = body["upgrade_path"]["options"][0]
    # 900 GPUs to replace: financed in four applications of at most 256; this new provider has no history.
    assert option["financing"]["count"] == 256 and option["financing"]["applications"] == 4
    assert option["payback_months"] is None and option["financing"]["reasons"]
    assert FleetAssessment.objects.get(pk=body["id"]).qualifying_gpus == 60


@pytest.mark.django_db
def test_multipart_csv_reports_unknown_names(provider_client) -> None:
    response = provider_client.post(URL, {"file": _csv(FARM_CSV)}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["total_gpus"] == 965 and body["unmatched_gpus"] == 5
    assert body["unmatched"][0]["raw_model"] == "Zotac Mystery Card"
    assert 0.05 <= body["qualifying_share"] <= 0.15


@pytest.mark.django_db
def test_list_and_detail_show_own_assessments_only(provider_client, other_provider_client) -> None:
    mine = provider_client.post(URL, FARM_JSON, format="json").json()["id"]
    theirs = other_provider_client.post(URL, {"lines": [{"model": "H100", "count": 8}]}, format="json").json()["id"]
    listed = provider_client.get(URL).json()
    assert [item["id"] for item in listed["results"]] == [mine]
    assert listed["results"][0]["qualifying_share"] == 0.0625
    assert provider_client.get(f"{URL}{mine}/").json()["qualifying_gpus"] == 60
    response = provider_client.get(f"{URL}{theirs}/")
    assert response.status_code == 404
    assert "H100" not in response.content.decode()
    assert other_provider_client.get(f"{URL}{mine}/").status_code == 404
    assert provider_client.get(f"{URL}999999/").status_code == 404


@pytest.mark.django_db
def test_customers_and_anonymous_are_refused(customer_client, api_client) -> None:
    assert customer_client.post(URL, FARM_JSON, format="json").status_code == 403
    assert customer_client.get(URL).status_code == 403
    assert api_client.post(URL, FARM_JSON, format="json").status_code == 401
    assert api_client.get(URL).status_code == 401
    assert client_for(UserFactory()).get(URL).status_code == 403
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"model,count\nRX 580\n", "Line 2: the count is missing"),
        (b"RX 580,abc\n", "not a whole number"),
        (b"RX 580,-4\n", "at least 1"),
        (b"RX 580,100001\n", "above the limit"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"\xff\xfe\xfa garbage \xc0\xc1", "not UTF-8"),
        ("".join(f"m{i},1\n" for i in range(5001)).encode(), "more than 5,000 lines"),
    ],
)
def test_bad_csv_is_400_and_saves_nothing(provider_client, payload, message) -> None:
    response = provider_client.post(URL, {"file": _csv(payload)}, format="multipart")
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({}, "multipart `file`"),
        ({"lines": []}, "empty"),
        ({"lines": [{"model": "RTX 3090"}]}, "count"),
        ({"lines": [{"model": "RTX 3090", "count": "x"}]}, "count"),
        ({"lines": [{"model": "RTX 3090", "count": 0}]}, "at least 1"),
        ({"lines": [{"model": "RTX 3090", "count": 1}], "utilisation": "1.2"}, "utilisation"),
        ({"lines": "RTX 3090,1"}, "lines"),
    ],
)
def test_bad_json_is_400_and_saves_nothing(provider_client, payload, fragment) -> None:
    response = provider_client.post(URL, payload, format="json")
    assert response.status_code == 400, response.content
    assert fragment in response.json()["detail"]
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
def test_malformed_json_body_is_400(provider_client) -> None:
    response = provider_client.generic("POST", URL, b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
def test_50_mb_upload_is_413_and_saves_nothing(provider_client) -> None:
    big = b"RX 580,1\n" * (50 * 1024 * 1024 // 9)
    response = provider_client.post(URL, {"file": _csv(big)}, format="multipart")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
@override_settings(RIGSHIFT_MAX_UPLOAD_BYTES=1000)
def test_file_over_the_limit_within_multipart_slack_is_413(provider_client) -> None:
    response = provider_client.post(URL, {"file": _csv(b"RX 580,1\n" * 200)}, format="multipart")
    assert response.status_code == 413
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
def test_oversized_body_is_refused_before_parsing_even_with_session_auth(provider, monkeypatch) -> None:
    """Session auth's CSRF check reads POST; the declared length is checked before authentication."""
    from rest_framework.test import APIClient

    def parse_forbidden(self):
        raise AssertionError("the body was parsed")

    client = APIClient()
    client.force_login(provider.user)
    monkeypatch.setattr("django.http.multipartparser.MultiPartParser.parse", parse_forbidden)
    big = _csv(b"RX 580,1\n" * (2 * 1024 * 1024 // 9))
    response = client.post(URL, {"file": big}, format="multipart")
    assert response.status_code == 413
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
def test_multipart_utilisation_and_zero_utilisation(provider_client) -> None:
    response = provider_client.post(
        URL, {"file": _csv(b"RX 580,10\n4090,2\n"), "utilisation": "0.9"}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["utilisation"] == "0.900"
    response = provider_client.post(URL, {"lines": [{"model": "RX 580", "count": 3}], "utilisation": 0}, format="json")
    assert response.status_code == 201
    options = response.json()["upgrade_path"]["options"]
    assert options and all(option["payback_months"] is None for option in options)


@pytest.mark.django_db
def test_overlong_model_name_and_both_inputs_are_400(provider_client) -> None:
    response = provider_client.post(URL, {"lines": [{"model": "x" * 201, "count": 1}]}, format="json")
    assert response.status_code == 400 and "longer than 200" in response.json()["detail"]
    response = provider_client.post(
        URL, {"file": _csv(b"RX 580,1\n"), "lines[0]model": "RX 580", "lines[0]count": "1"}, format="multipart"
    )
    assert response.status_code == 400
    assert "not both" in response.json()["detail"]
    assert FleetAssessment.objects.count() == 0
