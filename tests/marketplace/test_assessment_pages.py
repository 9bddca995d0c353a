"""Fleet assessment portal pages: role checks, paste and upload, form errors (never a 500), cross-tenant."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse

from marketplace.models import FleetAssessment
from marketplace.services.assessment import fleet_assess
from tests.factories import CustomerFactory, ProviderFactory

FARM_TEXT = "RX580 8GB,400\nGTX 1070,300\nrtx 3060ti lhr,200\n3090,60\nMystery Miner 9000,4\n"


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def provider_page(provider) -> Client:
    return _client_for(provider.user)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["provider:assessment-list", "provider:assessment-new"])
def test_anonymous_is_redirected_to_login(client, name) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_non_provider_gets_403(provider) -> None:
    client = _client_for(CustomerFactory().user)
    assessment = fleet_assess(provider=provider, lines=[("3090", 1)])
    assert client.get(reverse("provider:assessment-list")).status_code == 403
    assert (
        client.post(reverse("provider:assessment-new"), {"text": "3090,1", "utilisation_pct": "60"}).status_code == 403
    )
    assert client.get(reverse("provider:assessment-detail", args=[assessment.pk])).status_code == 403
    assert FleetAssessment.objects.count() == 1


@pytest.mark.django_db
def test_paste_creates_assessment_and_report_page_reads_well(provider_page) -> None:
    response = provider_page.post(reverse("provider:assessment-new"), {"text": FARM_TEXT, "utilisation_pct": "60"})
    assert response.status_code == 302
    assessment = FleetAssessment.objects.get()
    assert response["Location"] == reverse("provider:assessment-detail", args=[assessment.pk])
    page = provider_page.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "6.2%" in html  # 60 of 964 GPUs
    assert "60 of 964 GPUs" in html
    assert "<svg" in html and "GPUs by AI tier" in html and "Expected monthly earnings per model" in html
    assert "tier-unsuitable" in html and "tier-fine_tuning" in html
    assert "Mystery Miner 9000" in html and "not recognised" in html
    assert "Upgrade path" in html and "GeForce RTX 4090" in html and "months" in html
    assert "Polaris" in html  # the reason for the RX 580


@pytest.mark.django_db
def test_upload_creates_assessment(provider_page) -> None:
    upload = SimpleUploadedFile("fleet.csv", b"\xef\xbb\xbfmodel,count\nRTX 4090,8\n", content_type="text/csv")
    response = provider_page.post(reverse("provider:assessment-new"), {"file": upload, "utilisation_pct": "75"})
    assert response.status_code == 302
    assessment = FleetAssessment.objects.get()
    assert assessment.qualifying_gpus == 8 and str(assessment.utilisation) == "0.750"
    listing = provider_page.get(reverse("provider:assessment-list")).content.decode()
    assert reverse("provider:assessment-detail", args=[assessment.pk]) in listing
    assert "100.0%" in listing


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"text": "", "utilisation_pct": "60"}, "Upload a CSV file or paste"),
        ({"text": "RX 580\n", "utilisation_pct": "60"}, "Line 1: the count is missing"),
        ({"text": "RX 580,-2\n", "utilisation_pct": "60"}, "at least 1"),
        ({"text": "RX 580,2\n", "utilisation_pct": "150"}, "less than or equal to 100"),
        ({"text": "RX 580,2\n", "utilisation_pct": "abc"}, "Enter a number"),
    ],
)
def test_form_errors_rerender_with_message_and_400(provider_page, data, message) -> None:
    response = provider_page.post(reverse("provider:assessment-new"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "<form" in response.content.decode()
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
def test_binary_upload_is_a_form_error(provider_page) -> None:
    upload = SimpleUploadedFile("fleet.csv", b"\x00\x01\x02\xff" * 100, content_type="application/octet-stream")
    response = provider_page.post(reverse("provider:assessment-new"), {"file": upload, "utilisation_pct": "60"})
    assert response.status_code == 400
    assert "binary" in response.content.decode()
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
@override_settings(RIGSHIFT_MAX_UPLOAD_BYTES=1000)
def test_oversized_upload_is_413_form(provider_page) -> None:
    upload = SimpleUploadedFile("fleet.csv", b"RX 580,1\n" * 200, content_type="text/csv")
    response = provider_page.post(reverse("provider:assessment-new"), {"file": upload, "utilisation_pct": "60"})
    assert response.status_code == 413
    assert "limit" in response.content.decode()
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
def test_50_mb_upload_is_413_form(provider_page) -> None:
    upload = SimpleUploadedFile("fleet.csv", b"RX 580,1\n" * (50 * 1024 * 1024 // 9), content_type="text/csv")
    response = provider_page.post(reverse("provider:assessment-new"), {"file": upload, "utilisation_pct": "60"})
    assert response.status_code == 413
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
def test_provider_b_cannot_see_provider_a_assessment(provider, provider_page) -> None:
    other = ProviderFactory()
    theirs = fleet_assess(provider=other, lines=[("Secret Card Name", 7)])
    mine = fleet_assess(provider=provider, lines=[("3090", 1)])
    response = provider_page.get(reverse("provider:assessment-detail", args=[theirs.pk]))
    assert response.status_code == 404
    assert "Secret Card Name" not in response.content.decode()
    listing = provider_page.get(reverse("provider:assessment-list")).content.decode()
    assert reverse("provider:assessment-detail", args=[mine.pk]) in listing
    assert reverse("provider:assessment-detail", args=[theirs.pk]) not in listing


@pytest.mark.django_db
def test_oversized_body_is_refused_before_it_is_parsed(provider_page, monkeypatch) -> None:
    """The declared length is checked first: the multipart parser (and CSRF's read of POST) never runs."""

    def parse_forbidden(self):
        raise AssertionError("the body was parsed")

    upload = SimpleUploadedFile("fleet.csv", b"RX 580,1\n" * (2 * 1024 * 1024 // 9), content_type="text/csv")
    monkeypatch.setattr("django.http.multipartparser.MultiPartParser.parse", parse_forbidden)
    response = provider_page.post(reverse("provider:assessment-new"), {"file": upload, "utilisation_pct": "60"})
    assert response.status_code == 413
    assert FleetAssessment.objects.count() == 0


@pytest.mark.django_db
def test_csrf_is_still_enforced_on_the_form(provider) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(provider.user)
    response = client.post(reverse("provider:assessment-new"), {"text": "3090,1", "utilisation_pct": "60"})
    assert response.status_code == 403
    assert FleetAssessment.objects.count() == 0
