"""Financing API: wiring, 4xx on bad input with nothing saved, and tenancy (providers, lenders, customers, staff)."""

from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from common.money import MICROS, from_micros
from financing.models import Advance, AdvanceApplication, AdvanceStatus, CapitalCommitment
from marketplace.services.assessment import fleet_assess
from tests.conftest import client_for
from tests.factories import GPUModelFactory, NodeFactory
from tests.financing.support import earn, lender, season, staff_user

pytestmark = pytest.mark.django_db
APPS = "/api/v1/financing/applications/"


@pytest.fixture
def setup(provider: Any) -> dict[str, Any]:
    model = GPUModelFactory()
    node = season(NodeFactory(gpu_model=model, provider=provider))
    earn(provider_user=provider.user, node_id=node.pk, charge_micros=6_000 * MICROS)
    return {"model": model, "node": node}


def test_apply_returns_offer_with_inputs_and_arithmetic(provider_client: APIClient, setup: dict) -> None:
    r = provider_client.post(APPS, {"gpu_model": "rtx-4090", "count": 2, "node": setup["node"].pk}, format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["status"] == "offered" and body["offer"]["principal"] == "3198.000000"
    assert body["offer"]["withhold_rate"] in ("0.2", "0.3")
    assert body["inputs"]["trailing_90d_earnings"] and body["arithmetic"]
    listed = provider_client.get(APPS).json()
    assert [a["id"] for a in listed] == [body["id"]]
    assert provider_client.get(f"{APPS}{body['id']}/").status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        {"gpu_model": "nope", "count": 1},
        {"gpu_model": "rtx-4090", "count": 0},
        {"gpu_model": "rtx-4090", "count": -1},
        {"gpu_model": "rtx-4090", "count": "many"},
        {"gpu_model": "rtx-4090", "count": 100_000},
        {"gpu_model": "rtx-4090"},
        {},
    ],
)
def test_bad_applications_are_400_and_save_nothing(provider_client: APIClient, setup: dict, payload: dict) -> None:
    r = provider_client.post(APPS, payload, format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["detail"]
    assert AdvanceApplication.objects.count() == 0


def test_other_tenants_cannot_read_or_use(
    provider_client: APIClient, other_provider_client: APIClient, customer_client: APIClient, setup: dict
) -> None:
    other = NodeFactory(gpu_model=setup["model"])
    assert (
        provider_client.post(APPS, {"gpu_model": "rtx-4090", "count": 1, "node": other.pk}, format="json").status_code
        == 404
    )
    other_assessment = fleet_assess(provider=other.provider, lines=[("RTX 3090", 2)])
    assert provider_client.post(APPS, {"assessment": other_assessment.pk}, format="json").status_code == 404
    app = provider_client.post(APPS, {"gpu_model": "rtx-4090", "count": 1}, format="json").json()
    assert other_provider_client.get(f"{APPS}{app['id']}/").status_code == 404
    assert other_provider_client.get(APPS).json() == []
    assert customer_client.post(APPS, {"gpu_model": "rtx-4090", "count": 1}, format="json").status_code == 403
    assert customer_client.get(APPS).status_code == 403
    assert APIClient().get(APPS).status_code in (401, 403)
    # Lenders: staff approves; an advance outside a lender's preferences is not offered to it, nor readable.
    staff = client_for(staff_user())
    r = staff.post(f"/api/v1/financing/staff/applications/{app['id']}/decide/", {"decision": "approve"}, format="json")
    assert r.status_code == 200, r.json()
    advance_id = r.json()["advance"]
    picky = lender(capital_micros=10_000 * MICROS, tiers=["training"])
    willing = lender(capital_micros=10_000 * MICROS)
    picky_c, willing_c = client_for(picky), client_for(willing)
    assert picky_c.get("/api/v1/lender/offers/").json() == []
    assert picky_c.get(f"/api/v1/financing/advances/{advance_id}/").status_code == 404
    assert picky_c.post(f"/api/v1/lender/advances/{advance_id}/fund/", {}, format="json").status_code == 404
    assert [a["id"] for a in willing_c.get("/api/v1/lender/offers/").json()] == [advance_id]
    assert willing_c.get(f"/api/v1/financing/advances/{advance_id}/").status_code == 200
    assert other_provider_client.get(f"/api/v1/financing/advances/{advance_id}/").status_code == 404
    assert customer_client.get(f"/api/v1/financing/advances/{advance_id}/").status_code == 404
    assert customer_client.get("/api/v1/lender/offers/").status_code == 403
    assert provider_client.get("/api/v1/financing/staff/advances/").status_code == 403
    assert (
        willing_c.post(f"/api/v1/financing/staff/advances/{advance_id}/action/", {"action": "default"}).status_code
        == 403
    )
    r = willing_c.post(f"/api/v1/lender/advances/{advance_id}/fund/", {}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["your_share"]["funded"]
    # Once funded by someone else, it is no longer offered to the picky lender, and stays private.
    assert picky_c.get(f"/api/v1/financing/advances/{advance_id}/").status_code == 404
    assert other_provider_client.post(f"/api/v1/financing/advances/{advance_id}/payoff/", {}).status_code == 404
    mine = provider_client.get("/api/v1/financing/advances/").json()
    assert [a["id"] for a in mine] == [advance_id] and mine[0]["projected_payoff_date"]
    assert mine[0]["repaid"] == "0.000000"
    # The provider earns on its node: the advance is repaid from the settlement, visible over the API.
    earn(provider_user=setup["node"].provider.user, node_id=setup["node"].pk, charge_micros=1_000 * MICROS)
    mine = provider_client.get(f"/api/v1/financing/advances/{advance_id}/").json()
    withheld = 830 * MICROS * int(Decimal(mine["withhold_rate"]) * 10_000) // 10_000
    assert mine["repaid"] == format(from_micros(micros=withheld), "f") != "0.000000"
    assert other_provider_client.get("/api/v1/financing/advances/").json() == []
    portfolio = willing_c.get("/api/v1/lender/portfolio/").json()
    assert [a["id"] for a in portfolio["advances"]] == [advance_id]
    assert client_for(picky).get("/api/v1/lender/portfolio/").json()["advances"] == []


def test_apply_from_assessment_upgrade_path(provider_client: APIClient, provider: Any, setup: dict) -> None:
    GPUModelFactory(slug="rx-580-8gb", name="Radeon RX 580 8GB", tier="unsuitable", launch_price_usd=229)
    assessment = fleet_assess(provider=provider, lines=[("RX 580 8GB", 4)])
    assert assessment.report["upgrade_path"]["options"][0]["slug"] == "rtx-4090"
    r = provider_client.post(APPS, {"assessment": assessment.pk}, format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["assessment"] == assessment.pk and body["gpu_model"] == "rtx-4090" and body["count"] == 4
    bad = provider_client.post(APPS, {"assessment": assessment.pk, "option": "no-such-gpu"}, format="json")
    assert bad.status_code == 400 and "not an upgrade option" in bad.json()["detail"]


def test_lender_signup_capital_preferences_and_staff_actions(setup: dict, provider_client: APIClient) -> None:
    anon = APIClient()
    r = anon.post(
        "/api/v1/lenders/signup/",
        {"username": "capital1", "email": "c@example.com", "password": "long-enough-pw", "name": "Cap One"},
        format="json",
    )
    assert r.status_code == 201
    assert anon.post("/api/v1/lenders/signup/", {"username": "x"}, format="json").status_code == 400
    from django.contrib.auth.models import User

    lc = client_for(User.objects.get(username="capital1"))
    assert lc.post("/api/v1/lender/capital/", {"amount": "-5"}, format="json").status_code == 400
    assert lc.post("/api/v1/lender/capital/", {"amount": "1.001"}, format="json").status_code == 400
    r = lc.post("/api/v1/lender/capital/", {"amount": "20000.00"}, format="json")
    assert r.status_code == 201 and r.json()["status"] == "succeeded"
    assert CapitalCommitment.objects.count() == 1
    assert lc.get("/api/v1/lender/capital/").json()["available"] == "20000.000000"
    r = lc.put(
        "/api/v1/lender/preferences/",
        {"mode": "auto", "max_per_advance": "5000.00", "tiers": ["fine_tuning"], "max_payoff_months": 24},
        format="json",
    )
    assert r.status_code == 200, r.json()
    bad = {"mode": "auto", "max_per_advance": "1", "tiers": ["unsuitable"], "max_payoff_months": 24}
    assert lc.put("/api/v1/lender/preferences/", bad, format="json").status_code == 400
    app = provider_client.post(APPS, {"gpu_model": "rtx-4090", "count": 2}, format="json").json()
    staff = client_for(staff_user())
    assert [a["id"] for a in staff.get("/api/v1/financing/staff/applications/").json()] == [app["id"]]
    r = staff.post(
        f"/api/v1/financing/staff/applications/{app['id']}/decide/",
        {"decision": "approve", "disburse_to": "vendor", "vendor_name": "GPU Depot GmbH"},
        format="json",
    )
    advance = Advance.objects.get(pk=r.json()["advance"])
    assert advance.status == AdvanceStatus.ACTIVE  # the automatic lender funded it at once
    assert advance.vendor_name == "GPU Depot GmbH"
    again = staff.post(f"/api/v1/financing/staff/applications/{app['id']}/decide/", {"decision": "reject"})
    assert again.status_code == 409
    r = staff.post(f"/api/v1/financing/staff/advances/{advance.pk}/action/", {"action": "delinquent"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "delinquent"
    r = staff.post(f"/api/v1/financing/staff/advances/{advance.pk}/action/", {"action": "bogus"}, format="json")
    assert r.status_code == 400
    r = provider_client.post(f"/api/v1/financing/advances/{advance.pk}/payoff/", {"amount": "100.00"}, format="json")
    assert r.status_code == 200 and r.json()["repaid"] == "100.000000"
    r = provider_client.post(f"/api/v1/financing/advances/{advance.pk}/payoff/", {"amount": "99999.00"}, format="json")
    assert r.status_code == 400


def test_schema_documents_financing(api_client: APIClient) -> None:
    r = api_client.get("/api/schema/")
    assert r.status_code == 200
    assert b"/api/v1/financing/applications/" in r.content
