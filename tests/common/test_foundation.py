import pytest
from django.test import Client

from tests.factories import PASSWORD, UserFactory


def test_healthz_live_answers_without_checking_anything() -> None:
    response = Client().get("/healthz/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"] and "Content-Security-Policy" in response  # through the whole middleware stack


@pytest.mark.django_db
def test_healthz_reports_database_and_broker() -> None:
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True


@pytest.mark.django_db
def test_token_endpoint_issues_a_working_token(api_client) -> None:
    UserFactory(username="alice")
    response = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 201
    token = response.json()["token"]
    assert token.startswith("rs_")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get("/api/schema/").status_code == 200


@pytest.mark.django_db
def test_token_endpoint_rejects_bad_password_with_message(api_client) -> None:
    UserFactory(username="alice")
    response = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["detail"]


@pytest.mark.django_db
def test_bad_bearer_token_is_401(api_client) -> None:
    api_client.credentials(HTTP_AUTHORIZATION="Bearer rs_not-a-real-token")
    response = api_client.get("/api/schema/")
    assert response.status_code == 401


def test_home_page_renders(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert b"RigShift" in response.content
