"""The browser test's path through the API (issue 13, done-when): a miner with only mining cards assesses its fleet,
sees open contract demand with the advance it would get, offers to fulfil it, staff approve, a lender funds it,
the miner registers its node and its agent (the real Runner, in-process) reports the hardware; staff verify the node
(in the console: verification has no API), the contract starts and its first payment repays the lender."""

import time
from typing import cast

import pytest
import requests
from django.test import Client
from rigshift_agent.detect import simulate, simulated_benchmark, simulated_challenge_tflops
from rigshift_agent.executor import SimulatedExecutor
from rigshift_agent.runner import Runner
from rigshift_agent.state import MemoryStore
from rigshift_client import ApiClient

from billing.selectors.ledger import ledger_verify
from billing.services.wallet import wallet_credit
from common.money import MICROS
from simulator.agents import SERVER, InProcessSession
from tests.conftest import client_for
from tests.factories import CustomerFactory, ProviderFactory, UserFactory
from tests.financing.support import lender, staff_user

pytestmark = pytest.mark.django_db(transaction=True)  # delivery runs on the node_verified signal, on commit


def test_a_miner_is_financed_against_a_contract_through_the_api() -> None:
    buyer = CustomerFactory(user=UserFactory(email="ml@vision-lab.ai")).user
    wallet_credit(user=buyer, amount_micros=2_000 * MICROS, key="api:buyer")
    customer_api, staff = client_for(buyer), staff_user()
    funder = lender(capital_micros=5_000 * MICROS)
    miner = ProviderFactory(user=UserFactory(email="dana@hashfarm.io")).user
    provider_api, staff_api, lender_api = client_for(miner), client_for(staff), client_for(funder)

    posted = customer_api.post(
        "/api/v1/financing/demand/",
        {"gpu_model": "rtx-3090", "count": 4, "term_months": 12, "price": "0.30"},
        format="json",
    )
    assert posted.status_code == 201, posted.content
    demand_id = posted.json()["id"]

    assessed = provider_api.post(
        "/api/v1/fleet-assessments/",
        {"lines": [{"model": "RX 580 8GB", "count": 400}, {"model": "GTX 1070", "count": 300}]},
        format="json",
    )
    assert assessed.status_code == 201, assessed.content
    assert assessed.json()["qualifying_gpus"] == 0

    listed = provider_api.get("/api/v1/financing/demand/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    row = next(d for d in rows if d["id"] == demand_id)
    assert row["quote"]["offered"] and row["quote"]["principal"] == "3000.000000"

    offer = provider_api.post(f"/api/v1/financing/demand/{demand_id}/offer/", {}, format="json")
    assert offer.status_code == 201, offer.content
    app = offer.json()
    assert app["status"] == "offered" and app["offer"]["principal"] == row["quote"]["principal"]

    approved = staff_api.post(
        f"/api/v1/financing/staff/applications/{app['id']}/decide/", {"decision": "approve"}, format="json"
    )
    assert approved.status_code == 200, approved.content
    offers = lender_api.get("/api/v1/lender/offers/").json()
    advance_id = (offers["results"] if isinstance(offers, dict) else offers)[0]["id"]
    funded = lender_api.post(f"/api/v1/lender/advances/{advance_id}/fund/", {}, format="json")
    assert funded.status_code == 200 and funded.json()["status"] == "active", funded.content

    node = provider_api.post(
        "/api/v1/nodes/",
        {"name": "new-3090s", "region": "eu", "country": "DE", "gpu_model": "rtx-3090", "gpu_count": 4},
        format="json",
    )
    assert node.status_code == 201, node.content
    session = InProcessSession()
    Runner(
        client=ApiClient(server=SERVER, token=node.json()["agent_token"], session=cast(requests.Session, session)),
        hardware=simulate("4xRTX3090"),
        store=MemoryStore(),
        executor=SimulatedExecutor(clock=time.time),
        benchmark=simulated_benchmark("4xRTX3090"),
        clock=time.time,
        interval=15.0,
        name="miner-agent",
        simulated_tflops=simulated_challenge_tflops("4xRTX3090"),
    ).step()

    console = Client()
    console.force_login(staff)
    verified = console.post(f"/console/nodes/{node.json()['id']}/verify/")
    assert verified.status_code in (200, 302)

    advance = lender_api.get(f"/api/v1/financing/advances/{advance_id}/").json()
    assert advance["status"] == "active" and advance["repaid"] == "299.920500", advance
    assert provider_api.get(f"/api/v1/financing/demand/{demand_id}/").json()["status"] == "delivered"
    portfolio = lender_api.get("/api/v1/lender/portfolio/").json()
    assert portfolio["repaid"] == "299.920500", portfolio
    assert ledger_verify().ok
