"""Provider signup (service and API) and the payout account step."""

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from common.errors import ValidationFailed
from common.models import ApiToken
from common.tokens import token_hash
from marketplace.models import Provider
from marketplace.services.providers import provider_payout_account_connect, provider_signup
from tests.factories import ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

SIGNUP = {
    "username": "minerpat",
    "password": "long-enough-secret-42",
    "email": "pat@hashfarm.example",
    "company": "Hashfarm GmbH",
    "contact_name": "Pat Miner",
    "country": "de",
    "payout_currency": "EUR",
}


def test_signup_service_creates_user_provider_and_token() -> None:
    provider, raw = provider_signup(**SIGNUP)
    assert provider.user.username == "minerpat"
    assert provider.user.check_password(SIGNUP["password"])
    assert provider.country == "DE"  # normalised to upper case
    assert provider.payout_currency == "EUR"
    assert raw.startswith("rs_")
    token = ApiToken.objects.get(user=provider.user)
    assert token.key_hash == token_hash(raw=raw) and raw not in token.key_hash


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("country", "XX", "ISO 3166-1"),
        ("country", "Germany", "ISO 3166-1"),
        ("payout_currency", "BTC", "Payout currency"),
        ("password", "short", "too short"),
        ("password", "password123", "too common"),
        ("email", "not-an-email", "valid email"),
        ("username", "bad name!", "username"),
        ("company", "  ", "company"),
    ],
)
def test_signup_service_rejects_bad_input_and_writes_nothing(field: str, value: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        provider_signup(**{**SIGNUP, field: value})
    assert field in info.value.details
    assert fragment.lower() in " ".join(info.value.details[field]).lower()
    assert not User.objects.filter(username=SIGNUP["username"]).exists()
    assert Provider.objects.count() == 0


def test_signup_service_rejects_taken_username_case_insensitively() -> None:
    UserFactory(username="MinerPat")
    with pytest.raises(ValidationFailed, match="already taken"):
        provider_signup(**SIGNUP)
    assert Provider.objects.count() == 0


def test_signup_api_returns_token_that_authenticates(api_client) -> None:
    response = api_client.post("/api/v1/providers/signup/", SIGNUP, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["provider"]["company"] == "Hashfarm GmbH"
    assert body["provider"]["country"] == "DE"
    assert body["provider"]["username"] == "minerpat"
    assert "password" not in body["provider"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert api_client.get("/api/v1/nodes/").status_code == 200


def test_signup_api_duplicate_username_is_400_with_message(api_client) -> None:
    assert api_client.post("/api/v1/providers/signup/", SIGNUP, format="json").status_code == 201
    again = api_client.post("/api/v1/providers/signup/", {**SIGNUP, "email": "x@example.com"}, format="json")
    assert again.status_code == 400
    assert "already taken" in again.json()["detail"]
    assert "username" in again.json()["errors"]
    assert Provider.objects.count() == 1


def test_signup_api_bad_country_and_missing_fields_are_400(api_client) -> None:
    bad = api_client.post("/api/v1/providers/signup/", {**SIGNUP, "country": "ZZ"}, format="json")
    assert bad.status_code == 400
    assert "country" in bad.json()["detail"].lower()
    missing = api_client.post("/api/v1/providers/signup/", {"username": "x"}, format="json")
    assert missing.status_code == 400
    assert "password" in missing.json()["detail"]
    assert Provider.objects.count() == 0


def test_signup_api_ignores_existing_session_or_token(provider_client) -> None:
    response = provider_client.post("/api/v1/providers/signup/", SIGNUP, format="json")
    assert response.status_code == 201


def test_payout_account_connect_local_gateway_marks_ready() -> None:
    provider = ProviderFactory()
    assert not provider.payout_account_ready
    provider_payout_account_connect(provider=provider)
    provider.refresh_from_db()
    assert provider.payout_account_ready
    provider_payout_account_connect(provider=provider)  # idempotent
    assert Provider.objects.get(pk=provider.pk).payout_account_ready


@override_settings(STRIPE_SECRET_KEY="sk_test_x")
def test_payout_account_connect_with_stripe_keys_is_refused_clearly_until_connect_exists() -> None:
    provider = ProviderFactory()
    with pytest.raises(ValidationFailed, match="Stripe Connect"):
        provider_payout_account_connect(provider=provider)
    provider.refresh_from_db()
    assert not provider.payout_account_ready
