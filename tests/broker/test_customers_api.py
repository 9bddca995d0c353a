from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.selectors.wallet import wallet_balance
from broker.services.customers import customer_signup
from common.errors import ValidationFailed
from marketplace.models import Customer

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/signup/"


def test_signup_returns_token_that_works_and_wallet_starts_at_zero(api_client: APIClient) -> None:
    response = api_client.post(
        URL,
        {"username": "lab", "password": "a-long-secret-9", "email": "lab@example.com", "company": "Lab"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("rs_")
    assert body["customer"]["username"] == "lab"
    assert body["customer"]["company"] == "Lab"
    customer = Customer.objects.get(user__username="lab")
    assert wallet_balance(user=customer.user).available_micros == 0
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    wallet = client.get("/api/v1/wallet/")
    assert wallet.status_code == 200
    assert wallet.json()["available"] == "0.000000"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "x", "password": "short", "email": "x@example.com"}, "password"),
        ({"username": "x", "password": "a-long-secret-9", "email": "not-an-email"}, "email"),
        ({"password": "a-long-secret-9", "email": "x@example.com"}, "username"),
    ],
)
def test_signup_rejects_bad_input(api_client: APIClient, payload: dict[str, Any], field: str) -> None:
    response = api_client.post(URL, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert not Customer.objects.exists()


def test_signup_rejects_taken_username(api_client: APIClient) -> None:
    customer_signup(username="taken", password="a-long-secret-9", email="a@example.com")
    response = api_client.post(
        URL, {"username": "TAKEN", "password": "a-long-secret-9", "email": "b@example.com"}, format="json"
    )
    assert response.status_code == 400
    assert "taken" in response.json()["detail"]


def test_service_rejects_common_password() -> None:
    with pytest.raises(ValidationFailed, match="password"):
        customer_signup(username="u1", password="password", email="u1@example.com")
