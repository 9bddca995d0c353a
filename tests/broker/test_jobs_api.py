from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.selectors.wallet import wallet_balance
from broker.models import Job, JobEvent, JobState, Lease, LeaseState
from broker.services.jobs import job_book, job_cancel
from common.errors import Conflict, NotFound
from tests.broker.booking_helpers import fund, lease_on, node

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs/"


def booking(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "finetune",
        "gpu_count": 2,
        "min_gpu_ram": 24,
        "regions": ["eu"],
        "image": "ghcr.io/lab/train:1",
        "command": "python train.py",
        "env": {"EPOCHS": "3"},
        "ports": [8888],
        "mode": "on_demand",
        "max_price": "0.50",
        "duration_hours": "10",
    }
    data.update(overrides)
    return data


@pytest.fixture
def market(db: Any) -> Any:
    node(name="eu-4090", gpu="rtx-4090", gpu_count=4, price_micros=400_000, region="eu")
    return node(name="us-h100", gpu="h100-sxm", gpu_count=8, price_micros=2_500_000, region="us")


def test_book_holds_max_cost_and_records_the_timeline(market: Any, customer: Any, customer_client: APIClient) -> None:
    fund(customer, 100)
    response = customer_client.post(JOBS, booking(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "pending"
    assert body["held"] == "10.000000"  # 0.50 × 2 GPUs × 10 h
    assert body["max_price"] == "0.500000"
    assert body["requirements"]["regions"] == ["eu"]
    assert body["workload"] == {
        "image": "ghcr.io/lab/train:1",
        "command": "python train.py",
        "env": {"EPOCHS": "3"},
        "ports": [8888],
        "template": "",
        "ssh": False,
    }
    assert body["lease"] is None and body["connect"] is None
    assert body["cost_so_far"] == "0.000000"
    assert [e["to_state"] for e in body["timeline"]] == ["pending"]
    assert "booked" in body["timeline"][0]["note"]
    balance = wallet_balance(user=customer.user)
    assert balance.available_micros == 90_000_000
    assert balance.held_micros == 10_000_000
    job = Job.objects.get(pk=body["id"])
    assert job.held_micros == 10_000_000


def test_interruptible_and_reserved_modes(market: Any, customer: Any, customer_client: APIClient) -> None:
    fund(customer, 100)
    r = customer_client.post(JOBS, booking(mode="interruptible", max_price=None, bid="0.30"), format="json")
    assert r.status_code == 201, r.content
    assert r.json()["bid"] == "0.300000"
    assert r.json()["held"] == "6.000000"
    start = timezone.now() + timedelta(hours=1)
    r = customer_client.post(
        JOBS,
        booking(
            mode="reserved",
            earliest_start=start.isoformat(),
            latest_start=(start + timedelta(hours=2)).isoformat(),
            duration_hours="1.5",
        ),
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["held"] == "1.500000"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"image": ""}, "image"),
        ({"gpu_count": 0}, "gpu_count"),
        ({"gpu_models": ["warp-drive-9000"]}, "warp-drive-9000"),
        ({"ports": [0]}, "ports"),
        ({"ports": [70000]}, "ports"),
        ({"env": {"A": 1}}, "env"),
        ({"mode": "spot"}, "mode"),
        ({"max_price": None}, "max_price"),
        ({"max_price": "-1"}, "max_price"),
        ({"max_price": "abc"}, "max_price"),
        ({"mode": "interruptible", "max_price": None}, "bid"),
        ({"duration_hours": "0"}, "duration_hours"),
        ({"duration_hours": "721"}, "duration_hours"),
        ({"mode": "reserved"}, "earliest_start"),
        (
            {"mode": "reserved", "earliest_start": "2020-01-01T00:00:00Z", "latest_start": "2020-01-02T00:00:00Z"},
            "latest_start",
        ),
        ({"regions": ["mars"]}, "regions"),
        ({"min_tier": "gold"}, "min_tier"),
        # Issue 12: a window ending in year 9999 once stopped every match round; beyond the horizon is a 400.
        (
            {"mode": "reserved", "earliest_start": "2026-01-01T00:00:00Z", "latest_start": "9999-12-31T23:59:59Z"},
            "within 365 days",
        ),
        (
            {
                "mode": "reserved",
                "earliest_start": (timezone.now() + timedelta(days=400)).isoformat(),
                "latest_start": (timezone.now() + timedelta(days=401)).isoformat(),
            },
            "within 365 days",
        ),
        ({"duration_hours": "0.0"}, "duration_hours"),
        ({"duration_hours": "-1"}, "duration_hours"),
        ({"duration_hours": "1e999999999"}, "duration_hours"),
        ({"max_price": "Infinity"}, "max_price"),
        ({"max_price": "NaN"}, "max_price"),
    ],
)
def test_invalid_bookings_are_400_and_save_nothing(
    market: Any, customer: Any, customer_client: APIClient, overrides: dict[str, Any], needle: str
) -> None:
    fund(customer, 100)
    response = customer_client.post(JOBS, booking(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert needle in response.json()["detail"]
    assert not Job.objects.exists()
    assert wallet_balance(user=customer.user).held_micros == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gpu_count": 16, "min_gpu_ram": None, "regions": []}, "gpu_count 16 exceeds the largest node (8 GPUs)"),
        ({"min_gpu_ram": 500, "regions": []}, "min_gpu_ram 500 exceeds the largest GPU (80 GB)"),
        ({"gpu_count": 6}, "gpu_count 6 exceeds the largest node meeting the other requirements (4 GPUs)"),
        ({"regions": ["africa"]}, "No node is listed in regions africa"),
        ({"min_compute_cap": "9.5", "regions": []}, "min_compute_cap 9.5"),
        ({"min_cpu_cores_per_gpu": 1000}, "min_cpu_cores_per_gpu 1000 × 2 GPU(s) = 2000 CPU cores exceeds"),
    ],
)
def test_impossible_requirements_are_400_naming_the_market_max(
    market: Any, customer: Any, customer_client: APIClient, overrides: dict[str, Any], message: str
) -> None:
    fund(customer, 1000)
    response = customer_client.post(JOBS, booking(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert response.json()["code"] == "impossible_requirement"
    assert not Job.objects.exists()
    assert wallet_balance(user=customer.user).held_micros == 0


def test_wallet_that_cannot_cover_is_402_with_shortfall_and_saves_nothing(
    market: Any, customer: Any, customer_client: APIClient
) -> None:
    fund(customer, 3)
    response = customer_client.post(JOBS, booking(), format="json")
    assert response.status_code == 402
    body = response.json()
    assert "$7.00" in body["detail"]
    assert body["errors"]["shortfall"] == "7.000000"
    assert not Job.objects.exists()
    assert not JobEvent.objects.exists()
    balance = wallet_balance(user=customer.user)
    assert (balance.available_micros, balance.held_micros) == (3_000_000, 0)


def test_idempotency_key_books_once(market: Any, customer: Any, customer_client: APIClient) -> None:
    fund(customer, 100)
    first = customer_client.post(JOBS, booking(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = customer_client.post(JOBS, booking(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    assert second.status_code == 200
    assert first.json() == second.json()
    assert Job.objects.count() == 1
    assert wallet_balance(user=customer.user).held_micros == 10_000_000
    different = customer_client.post(JOBS, booking(gpu_count=1), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert different.status_code == 409
    assert "k-1" in different.json()["detail"]
    other_key = customer_client.post(JOBS, booking(), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert other_key.status_code == 201
    assert Job.objects.count() == 2


def test_same_idempotency_key_is_per_customer(
    market: Any, customer: Any, other_customer: Any, customer_client: APIClient, other_customer_client: APIClient
) -> None:
    fund(customer, 100)
    fund(other_customer, 100)
    a = customer_client.post(JOBS, booking(), format="json", HTTP_IDEMPOTENCY_KEY="same")
    b = other_customer_client.post(JOBS, booking(), format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_list_and_detail_show_own_jobs_only(
    market: Any, customer: Any, other_customer: Any, customer_client: APIClient, other_customer_client: APIClient
) -> None:
    fund(customer, 100)
    job = job_book(customer=customer, data=booking())
    listed = customer_client.get(JOBS)
    assert listed.status_code == 200
    assert [j["id"] for j in listed.json()["results"]] == [job.pk]
    assert other_customer_client.get(JOBS).json()["results"] == []
    assert customer_client.get(f"{JOBS}{job.pk}/").status_code == 200
    assert other_customer_client.get(f"{JOBS}{job.pk}/").status_code == 404
    assert other_customer_client.post(f"{JOBS}{job.pk}/cancel/").status_code == 404
    assert Job.objects.get(pk=job.pk).state == JobState.PENDING
    assert customer_client.get(f"{JOBS}999999/").status_code == 404


def test_providers_and_anonymous_are_refused(market: Any, provider_client: APIClient, api_client: APIClient) -> None:
    for client, code in ((provider_client, 403), (api_client, 401)):
        assert client.get(JOBS).status_code == code
        assert client.post(JOBS, booking(), format="json").status_code == code
        assert client.post("/api/v1/quotes/", {"gpu_count": 1}, format="json").status_code == code
        assert client.get("/api/v1/wallet/").status_code == code


def test_cancel_pending_releases_the_whole_hold_and_double_cancel_is_safe(
    market: Any, customer: Any, customer_client: APIClient
) -> None:
    fund(customer, 100)
    job = job_book(customer=customer, data=booking())
    response = customer_client.post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert response.json()["held"] == "0.000000"
    assert [e["to_state"] for e in response.json()["timeline"]] == ["pending", "cancelled"]
    balance = wallet_balance(user=customer.user)
    assert (balance.available_micros, balance.held_micros) == (100_000_000, 0)
    again = customer_client.post(f"{JOBS}{job.pk}/cancel/")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]
    balance = wallet_balance(user=customer.user)
    assert (balance.available_micros, balance.held_micros) == (100_000_000, 0)


def test_cancel_running_job_ends_its_lease_and_shows_it_before(
    market: Any, customer: Any, customer_client: APIClient
) -> None:
    fund(customer, 100)
    job = job_book(customer=customer, data=booking())
    eu = market.provider.nodes.model.objects.get(name="eu-4090")
    lease = lease_on(eu, customer, 2)
    lease.job = job
    lease.save()
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    detail = customer_client.get(f"{JOBS}{job.pk}/").json()
    assert detail["lease"]["node_name"] == "eu-4090"
    assert detail["lease"]["region"] == "eu"
    assert detail["lease"]["gpu_slots"] == [0, 1]
    assert detail["lease"]["price"] == "0.400000"
    cancelled = job_cancel(job=job, customer=customer)
    assert cancelled.state == JobState.CANCELLED
    assert Lease.objects.get(pk=lease.pk).state == LeaseState.ENDED
    assert wallet_balance(user=customer.user).held_micros == 0
    with pytest.raises(Conflict):
        job_cancel(job=job, customer=customer)


def test_cancel_service_refuses_another_customers_job(market: Any, customer: Any, other_customer: Any) -> None:
    fund(customer, 100)
    job = job_book(customer=customer, data=booking())
    with pytest.raises(NotFound):
        job_cancel(job=job, customer=other_customer)
    assert Job.objects.get(pk=job.pk).state == JobState.PENDING


def test_booking_calls_match_round_soon_after_commit(
    market: Any, customer: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    calls: list[str] = []
    monkeypatch.setattr("broker.dispatch.match_round_request", calls.append)
    fund(customer, 100)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_book(customer=customer, data=booking())
    assert calls == []  # nothing is sent before the booking commits
    for callback in callbacks:
        callback()
    assert calls == ["default"]


def test_cancel_running_job_with_a_billing_account_releases_once_through_billing(
    market: Any, customer: Any, customer_client: APIClient
) -> None:
    settlement = pytest.importorskip("billing.services.settlement")
    from billing.models import LeaseAccount, LeaseAccountStatus

    fund(customer, 100)
    job = job_book(customer=customer, data=booking())
    eu = market.provider.nodes.model.objects.get(name="eu-4090")
    lease = lease_on(eu, customer, 2)
    lease.job = job
    lease.activated_at = timezone.now()
    lease.save()
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    settlement.lease_account_open(
        lease_ref=lease.pk,
        job_ref=job.pk,
        customer_user=customer.user,
        provider_user=eu.provider.user,
        node_id=eu.pk,
        price_micros=lease.price_micros,
        gpu_count=2,
        hold_micros=job.held_micros,
    )
    response = customer_client.post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 200
    assert LeaseAccount.objects.get(lease_ref=lease.pk).status == LeaseAccountStatus.CLOSED
    balance = wallet_balance(user=customer.user)
    assert (balance.available_micros, balance.held_micros) == (100_000_000, 0)
    assert customer_client.post(f"{JOBS}{job.pk}/cancel/").status_code == 409
    assert wallet_balance(user=customer.user).available_micros == 100_000_000
