from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.models import TopUp
from billing.services.topups import topup_create
from billing.services.wallet import escrow_hold

pytestmark = pytest.mark.django_db

WALLET = "/api/v1/wallet/"
TOPUPS = "/api/v1/wallet/topups/"


def test_topup_then_wallet_shows_available_held_and_transactions(customer: Any, customer_client: APIClient) -> None:
    created = customer_client.post(TOPUPS, {"amount": "50.00"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "succeeded"
    assert created.json()["amount"] == "50.00"
    assert created.json()["checkout_url"] == ""
    escrow_hold(user=customer.user, amount_micros=45_000_000, key="hold-1", memo="job 1")
    body = customer_client.get(WALLET).json()
    assert body["available"] == "5.000000"
    assert body["held"] == "45.000000"
    assert body["currency"] == "USD"
    assert body["low_balance"] is True
    assert [t["amount"] for t in body["transactions"]] == ["-45.000000", "50.000000"]
    assert body["transactions"][1]["kind"] == "topup"


def test_healthy_wallet_is_not_low(customer: Any, customer_client: APIClient) -> None:
    topup_create(user=customer.user, amount_micros=500_000_000)
    assert customer_client.get(WALLET).json()["low_balance"] is False


@pytest.mark.parametrize("amount", ["0", "-1", "100000.01", "12.345", "abc", ""])
def test_bad_topup_amount_is_400(customer_client: APIClient, amount: str) -> None:
    response = customer_client.post(TOPUPS, {"amount": amount}, format="json")
    assert response.status_code == 400
    assert "amount" in response.json()["detail"]
    assert not TopUp.objects.exists()


def test_topups_list_is_own_only(
    customer: Any, other_customer: Any, customer_client: APIClient, other_customer_client: APIClient
) -> None:
    mine = topup_create(user=customer.user, amount_micros=10_000_000)
    topup_create(user=other_customer.user, amount_micros=20_000_000)
    assert [t["id"] for t in customer_client.get(TOPUPS).json()] == [mine.pk]
    other = other_customer_client.get(WALLET).json()
    assert other["available"] == "20.000000"
    assert all(t["amount"] != "10.000000" for t in other["transactions"])


def test_providers_and_anonymous_cannot_use_the_wallet(provider_client: APIClient, api_client: APIClient) -> None:
    assert provider_client.get(WALLET).status_code == 403
    assert provider_client.post(TOPUPS, {"amount": "5"}, format="json").status_code == 403
    assert api_client.get(WALLET).status_code == 401
    assert api_client.post(TOPUPS, {"amount": "5"}, format="json").status_code == 401
    assert not TopUp.objects.exists()
