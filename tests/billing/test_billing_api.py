import pytest

from billing.models import Invoice
from billing.services.metering import usage_ingest
from billing.services.payouts import payout_create, payout_send
from billing.services.settlement import usage_settle_pending
from tests.billing.helpers import open_lease, report
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_invoice_api_own_only(customer, customer_client, other_customer_client, provider_client) -> None:
    open_lease(lease_ref=1, customer=customer.user, price_micros=1_000_001)
    usage_ingest(node_id=1, reports=[report(1, 0, gpu_seconds=99)])
    usage_settle_pending()
    created = customer_client.post("/api/v1/invoices/")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["reconciled"] is True
    assert body["usage"] == "0.027500"  # 1_000_001 * 99_000 // 3_600_000 micro-dollars
    assert body["lines"][0]["lease"] == 1 and body["lines"][0]["rate_per_gpu_hour"] == "1.000001"
    invoice_id = body["id"]
    assert customer_client.get(f"/api/v1/invoices/{invoice_id}/").status_code == 200
    assert [i["id"] for i in customer_client.get("/api/v1/invoices/").json()] == [invoice_id]
    assert other_customer_client.get(f"/api/v1/invoices/{invoice_id}/").status_code == 404
    assert other_customer_client.get("/api/v1/invoices/").json() == []
    assert provider_client.get("/api/v1/invoices/").status_code == 403
    assert Invoice.objects.count() == 1


def test_provider_earnings_and_payouts_api(provider, provider_client, other_provider_client, customer_client) -> None:
    open_lease(lease_ref=2, provider=provider.user, price_micros=36_000_000, hold=50_000_000)
    usage_ingest(node_id=1, reports=[report(2, 0, gpu_seconds=3600)])
    usage_settle_pending()
    payout_send(payout_id=payout_create(provider_user=provider.user).pk)
    earnings = provider_client.get("/api/v1/provider/earnings/").json()
    assert earnings["gross"] == "36.000000"
    assert earnings["earnings"] == "29.880000"  # 83% after 15% fee and 2% reserve
    assert earnings["paid_out"] == "29.880000" and earnings["balance"] == "0.000000"
    assert len(provider_client.get("/api/v1/provider/payouts/").json()) == 1
    other = other_provider_client.get("/api/v1/provider/earnings/").json()
    assert other["gross"] == "0.000000" and other["payouts"] == []
    assert other_provider_client.get("/api/v1/provider/payouts/").json() == []
    assert customer_client.get("/api/v1/provider/earnings/").status_code == 403
    assert provider_client.get("/api/v1/provider/earnings/?month=nope").status_code == 400
    assert provider_client.post("/api/v1/provider/payout-account/").json()["url"] == "/provider/earnings/"


def test_ledger_check_api_staff_only(customer_client) -> None:
    assert customer_client.get("/api/v1/ledger/check/").status_code == 403
    staff = client_for(UserFactory(is_staff=True))
    body = staff.get("/api/v1/ledger/check/").json()
    assert body["ok"] is True and body["checks"]
