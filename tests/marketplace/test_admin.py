"""Django admin: every model of marketplace, billing, financing and broker is registered and its pages render."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client

from billing.models import AccountKind, Entry, LedgerTransaction
from billing.services.ledger import account_get, ledger_transfer
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db

APPS = ("marketplace", "billing", "financing", "broker", "common")


def all_models():
    return [model for label in APPS for model in apps.get_app_config(label).get_models()]


@pytest.fixture
def staff() -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def test_every_model_is_registered() -> None:
    missing = [model.__name__ for model in all_models() if not admin.site.is_registered(model)]
    assert missing == []


def test_every_changelist_renders_with_search_and_filters(staff) -> None:
    NodeFactory(hardware_mismatch="registered 4, agent sees 3")
    for model in all_models():
        meta = model._meta
        url = f"/admin/{meta.app_label}/{meta.model_name}/"
        assert staff.get(url).status_code == 200, url
        model_admin = admin.site._registry[model]
        if model_admin.search_fields:
            assert staff.get(url, {"q": "x"}).status_code == 200, url


def test_node_change_page_keeps_token_hash_read_only(staff) -> None:
    node = NodeFactory(token_hash="a" * 64)
    response = staff.get(f"/admin/marketplace/node/{node.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="token_hash"' not in html and 'name="cordoned"' in html


def test_ledger_is_read_only_in_admin(staff) -> None:
    # A real ledger transaction through the service, then try to add/change/delete it in the admin.
    user = User.objects.create_user("payer")
    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=user)
    clearing = account_get(kind=AccountKind.GATEWAY_CLEARING)
    ledger_transfer(
        key="admin-test-1",
        kind="topup",
        legs=[(clearing, -5_000_000), (wallet, 5_000_000)],
    )
    tx = LedgerTransaction.objects.get(idempotency_key="admin-test-1")
    entry = Entry.objects.filter(transaction=tx).first()
    assert staff.get(f"/admin/billing/ledgertransaction/{tx.pk}/change/").status_code == 200  # view only
    assert staff.get("/admin/billing/ledgertransaction/add/").status_code == 403
    assert staff.get("/admin/billing/entry/add/").status_code == 403
    assert staff.post(f"/admin/billing/ledgertransaction/{tx.pk}/change/", {"memo": "x"}).status_code == 403
    assert staff.post(f"/admin/billing/entry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Entry.objects.filter(transaction=tx).count() == 2


def test_non_staff_cannot_use_admin() -> None:
    client = Client()
    client.force_login(User.objects.create_user("plain", password="pw-123456789"))
    assert client.get("/admin/marketplace/node/").status_code == 302
