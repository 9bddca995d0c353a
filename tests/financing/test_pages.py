"""Financing pages: wiring, forms (CSRF-protected POSTs through the services), roles and tenancy."""

from typing import Any

import pytest
from django.test import Client

from common.money import MICROS
from financing.models import Advance, AdvanceApplication, AdvanceStatus
from tests.factories import PASSWORD, CustomerFactory, GPUModelFactory, NodeFactory, ProviderFactory
from tests.financing.support import earn, lender, season, staff_user

pytestmark = pytest.mark.django_db


def login(user: Any) -> Client:
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


@pytest.fixture
def world() -> dict[str, Any]:
    model = GPUModelFactory()
    node = season(NodeFactory(gpu_model=model))
    provider = node.provider.user
    earn(provider_user=provider, node_id=node.pk, charge_micros=6_000 * MICROS)
    return {"provider": provider, "node": node, "model": model}


def test_provider_applies_from_page_and_sees_offer(world: dict) -> None:
    c = login(world["provider"])
    assert c.get("/provider/financing/").status_code == 200
    r = c.post("/provider/financing/", {"gpu_model": "rtx-4090", "count": "2", "node": str(world["node"].pk)})
    app = AdvanceApplication.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/provider/financing/applications/{app.pk}/"
    page = c.get(r["Location"]).content.decode()
    assert "Offer" in page and "expected payoff" in page and "$3,198.00" in page
    r = c.post("/provider/financing/", {"gpu_model": "rtx-4090", "count": "0"}, follow=True)
    assert "count" in r.content.decode() and AdvanceApplication.objects.count() == 1


def test_pages_are_private(world: dict) -> None:
    app_id = login(world["provider"]).post("/provider/financing/", {"gpu_model": "rtx-4090", "count": "1"})
    app = AdvanceApplication.objects.get()
    other = login(ProviderFactory().user)
    assert other.get(f"/provider/financing/applications/{app.pk}/").status_code == 404
    customer = login(CustomerFactory().user)
    assert customer.get("/provider/financing/").status_code == 403
    assert customer.get("/lender/").status_code == 403
    assert customer.get("/console/financing/").status_code == 403
    assert login(world["provider"]).get("/console/financing/").status_code == 403
    assert Client().get("/lender/").status_code == 302  # to the login page
    assert app_id.status_code == 302
    # Staff approve through the console page; the advance is then private to provider, funders, offered lenders.
    staff = login(staff_user())
    assert staff.get("/console/financing/").status_code == 200
    r = staff.post(f"/console/financing/applications/{app.pk}/decide/", {"decision": "approve"})
    assert r.status_code == 302
    advance = Advance.objects.get()
    assert other.get(f"/provider/financing/advances/{advance.pk}/").status_code == 404
    picky = login(lender(capital_micros=10_000 * MICROS, tiers=["training"]))
    assert picky.get(f"/lender/advances/{advance.pk}/").status_code == 404
    willing_user = lender(capital_micros=10_000 * MICROS)
    willing = login(willing_user)
    portal = willing.get("/lender/").content.decode()
    assert f"/lender/advances/{advance.pk}/" in portal and "<svg" in portal
    r = willing.post(f"/lender/advances/{advance.pk}/", {"amount": ""})
    assert r.status_code == 302
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.ACTIVE
    page = login(world["provider"]).get(f"/provider/financing/advances/{advance.pk}/").content.decode()
    assert "Active" in page and "Remaining" in page
    assert staff.get(f"/console/financing/advances/{advance.pk}/").status_code == 200
    r = staff.post(f"/console/financing/advances/{advance.pk}/action/", {"action": "delinquent"})
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DELINQUENT
    assert picky.post(f"/lender/advances/{advance.pk}/", {"amount": "1"}).status_code == 404
    assert customer.post(f"/console/financing/advances/{advance.pk}/action/", {"action": "cure"}).status_code == 403


def test_lender_signup_capital_and_preferences_pages() -> None:
    c = Client()
    assert c.get("/lender/signup/").status_code == 200
    r = c.post(
        "/lender/signup/", {"name": "Fund A", "username": "funda", "email": "a@x.test", "password": "longpassword"}
    )
    assert r.status_code == 302 and r["Location"] == "/lender/"
    assert c.post("/lender/signup/", {"name": "", "username": "", "password": "x"}).status_code == 400
    c.post("/lender/capital/", {"amount": "2500.00"})
    page = c.get("/lender/").content.decode()
    assert "$2,500.00" in page
    c.post(
        "/lender/preferences/",
        {"mode": "auto", "max_per_advance": "1000", "tiers": ["training"], "max_payoff_months": "12"},
    )
    from django.contrib.auth.models import User

    pref = User.objects.get(username="funda").lender_preference
    assert pref.mode == "auto" and pref.max_per_advance_micros == 1000 * MICROS and pref.tiers == ["training"]


def test_admin_actions_approve_and_default(world: dict) -> None:
    login(world["provider"]).post("/provider/financing/", {"gpu_model": "rtx-4090", "count": "1"})
    app = AdvanceApplication.objects.get()
    lender(capital_micros=10_000 * MICROS, mode="auto")
    admin_user = staff_user()
    admin_user.is_superuser = True
    admin_user.save(update_fields=["is_superuser"])
    c = login(admin_user)
    r = c.post("/admin/financing/advanceapplication/", {"action": "approve_offers", "_selected_action": [str(app.pk)]})
    assert r.status_code == 302
    advance = Advance.objects.get()
    assert advance.status == AdvanceStatus.ACTIVE
    c.post("/admin/financing/advance/", {"action": "default_write_off", "_selected_action": [str(advance.pk)]})
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DEFAULTED
    # The admin pages of financing's models moved with them; the old billing addresses redirect there.
    r = c.get(f"/admin/billing/advance/{advance.pk}/change/", {"q": "x"})
    assert r.status_code == 301 and r["Location"] == f"/admin/financing/advance/{advance.pk}/change/?q=x"
    assert c.get(r["Location"]).status_code == 200
    assert c.get("/admin/billing/ledgertransaction/").status_code == 200  # billing's own models stay
