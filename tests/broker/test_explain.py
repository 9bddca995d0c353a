# mypy: disable-error-code="misc"
"""Explanations: the requirement that emptied the candidate set and what would match; the API's tenancy."""

from datetime import timedelta

import pytest
from django.utils import timezone

from broker.services.explain import job_explain
from broker.services.leases import lease_create
from broker.services.matching import match_round_run
from tests.conftest import client_for
from tests.factories import CustomerFactory, GPUModelFactory, JobFactory, NodeFactory, UserFactory

pytestmark = pytest.mark.django_db


def job_for(customer, **kw):
    models = kw.pop("gpu_models", None)
    defaults = {"name": "j", "gpu_count": 1, "image": "img", "duration_seconds": 3600, "max_price_micros": 5_000_000}
    defaults.update(kw)
    job = JobFactory(customer=customer, **defaults)
    if models:
        job.gpu_models.set(models)
    return job


def a100():
    return GPUModelFactory(slug="a100-80gb", name="A100 80GB", vram_gb=80, tier="training")


def test_price_message_names_cheapest_matching_node_and_the_max():
    NodeFactory(gpu_model=a100(), region="eu", price_micros=2_450_000)
    NodeFactory(gpu_model=a100(), region="eu", price_micros=3_100_000)
    NodeFactory(region="eu", price_micros=100_000)  # 24 GB: too small, must not count as cheapest
    job = job_for(CustomerFactory(), min_gpu_ram=80, regions=["eu"], max_price_micros=2_000_000)
    e = job_explain(job=job)
    assert e.code == "price"
    assert "≥ 80 GB VRAM in eu asks $2.45/GPU-hour" in e.message and "your max is $2.00/GPU-hour" in e.message


def test_capacity_message_says_until_when():
    node = NodeFactory(gpu_count=1)
    busy = job_for(CustomerFactory())
    now = timezone.now()
    until = now + timedelta(hours=3)
    lease_create(
        job_id=busy.pk, node_id=node.pk, gpu_slots=[0], price_micros=node.price_micros, starts_at=now, ends_at=until
    )
    job = job_for(CustomerFactory())
    e = job_explain(job=job)
    assert e.code == "capacity" and e.candidates == 1
    assert f"1 node(s) fit but are leased until {until:%Y-%m-%d %H:%M} UTC" in e.message


def test_model_region_and_ram_messages():
    NodeFactory(region="us")
    c = CustomerFactory()
    e = job_explain(job=job_for(c, gpu_models=[a100()]))
    assert e.code == "gpu_model" and "A100 80GB" in e.message and "GeForce RTX 4090 (1)" in e.message
    e = job_explain(job=job_for(c, regions=["eu"]))
    assert e.code == "region" and "us (1)" in e.message
    e = job_explain(job=job_for(c, min_gpu_ram=48))
    assert e.code == "gpu_ram" and "24" in e.message and "48" in e.message


def test_placed_and_contention():
    NodeFactory(gpu_count=1)
    c = CustomerFactory()
    job = job_for(c)
    assert job_explain(job=job).code == "contention"  # fits and free: the next round places it
    match_round_run()
    job.refresh_from_db()
    e = job_explain(job=job)
    assert e.code == "placed" and "Placed on node" in e.message


def test_round_sets_pending_reason():
    NodeFactory(price_micros=3_000_000)
    job = job_for(CustomerFactory(), max_price_micros=1_000_000)
    match_round_run()
    job.refresh_from_db()
    assert job.pending_reason == "Nodes meet the requirements but ask more than the price limit."


def test_api_own_job_only_staff_allowed(customer, customer_client, other_customer_client):
    NodeFactory(price_micros=3_000_000)
    job = job_for(customer, max_price_micros=1_000_000)
    url = f"/api/v1/jobs/{job.pk}/explain/"
    r = customer_client.get(url)
    assert r.status_code == 200 and r.json()["code"] == "price"
    assert "$3.00/GPU-hour" in r.json()["message"]
    assert other_customer_client.get(url).status_code == 404
    assert customer_client.get("/api/v1/jobs/999999/explain/").status_code == 404
    staff = client_for(UserFactory(is_staff=True))
    assert staff.get(url).status_code == 200


def test_api_provider_forbidden_and_anonymous_unauthorised(provider_client, api_client, customer):
    job = job_for(customer)
    url = f"/api/v1/jobs/{job.pk}/explain/"
    assert provider_client.get(url).status_code == 403
    assert api_client.get(url).status_code in (401, 403)


def test_match_rounds_api_staff_only(customer_client):
    NodeFactory()
    job_for(CustomerFactory())
    assert customer_client.get("/api/v1/match/rounds/").status_code == 403
    assert customer_client.post("/api/v1/match/rounds/").status_code == 403
    staff = client_for(UserFactory(is_staff=True))
    r = staff.post("/api/v1/match/rounds/")
    assert r.status_code == 200 and r.json()["placed"] == 1
    rounds = staff.get("/api/v1/match/rounds/").json()
    assert rounds[0]["placed"] == 1 and "engine_filter" in rounds[0]["phases"]
