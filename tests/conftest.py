"""Shared fixtures: API clients per role."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from common.services import api_token_create
from tests.factories import CustomerFactory, ProviderFactory
from tests.parallel import django_db_setup, pytest_collection_modifyitems  # noqa: F401 — parallel runs (see there)


def client_for(user: Any) -> APIClient:
    _, raw = api_token_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def provider(db: Any) -> Any:
    return ProviderFactory()


@pytest.fixture
def other_provider(db: Any) -> Any:
    return ProviderFactory()


@pytest.fixture
def customer(db: Any) -> Any:
    return CustomerFactory()


@pytest.fixture
def other_customer(db: Any) -> Any:
    return CustomerFactory()


@pytest.fixture
def provider_client(provider: Any) -> APIClient:
    return client_for(provider.user)


@pytest.fixture
def other_provider_client(other_provider: Any) -> APIClient:
    return client_for(other_provider.user)


@pytest.fixture
def customer_client(customer: Any) -> APIClient:
    return client_for(customer.user)


@pytest.fixture
def other_customer_client(other_customer: Any) -> APIClient:
    return client_for(other_customer.user)


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Each test starts with empty rate-limit and lockout counters (they live in the shared cache)."""
    from common.ratelimit import ratelimit_namespace_reset

    ratelimit_namespace_reset()
