"""Storage and egress: listing prices, metering exactly once, cumulative rating, separate invoice lines."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Invoice, InvoiceLineKind, LeaseAccount, Settlement, UsageRecord
from billing.selectors.ledger import ledger_verify
from billing.services.invoices import invoice_close_month, invoice_reconcile
from billing.services.metering import usage_ingest
from billing.services.settlement import lease_account_open, lease_settle, lease_settle_final
from billing.services.wallet import escrow_hold, wallet_credit
from broker.api.agent_serializers import AgentLeaseReportSerializer
from common.errors import ValidationFailed
from marketplace.services.nodes import node_update_listing
from tests.billing.helpers import heartbeats_until, report
from tests.factories import PASSWORD, CustomerFactory, JobFactory, NodeFactory, ProviderFactory

pytestmark = pytest.mark.django_db

STORAGE_PRICE = 100_000  # $0.10 per GB-month
EGRESS_PRICE = 70_000  # $0.07 per GB
MONTH_MS = 30 * 86_400 * 1000
GB_MS_PER_REPORT = 100 * 15_000  # 100 GB held for the helper report's 15 s interval
BYTES_PER_REPORT = 1_234_567


def open_priced_lease(*, lease_ref: int, storage: int = STORAGE_PRICE, egress: int = EGRESS_PRICE) -> LeaseAccount:
    customer, provider = CustomerFactory().user, ProviderFactory().user
    wallet_credit(user=customer, amount_micros=10_000_000, key=f"topup:{lease_ref}")
    escrow_hold(user=customer, amount_micros=10_000_000, key=f"hold:{lease_ref}")
    account = lease_account_open(
        lease_ref=lease_ref,
        job_ref=lease_ref * 10,
        customer_user=customer,
        provider_user=provider,
        node_id=1,
        price_micros=3_600_000,  # 1000 micro-USD per GPU-second
        gpu_count=1,
        hold_micros=10_000_000,
        storage_price_micros=storage,
        egress_price_micros=egress,
        active_from=timezone.now() - timedelta(days=30),
    )
    heartbeats_until(node_id=1, until=timezone.now())  # the node heartbeated all along (the broker clock)
    account.refresh_from_db()
    return account


def priced_report(lease: int, seq: int, **extra: Any) -> dict[str, Any]:
    return report(lease, seq, **{"storage_gb": "100", "egress_bytes": BYTES_PER_REPORT, **extra})


# --- listing -------------------------------------------------------------------------------------------------


def test_listing_service_sets_and_validates_storage_egress_prices() -> None:
    node = NodeFactory(price_micros=400_000, min_bid_micros=100_000)
    base = {
        "price_micros": 400_000,
        "min_bid_micros": 100_000,
        "available_from": None,
        "available_until": None,
        "listed": node.listed,
    }
    node_update_listing(node=node, **base, storage_price_micros=STORAGE_PRICE, egress_price_micros=EGRESS_PRICE)
    node.refresh_from_db()
    assert (node.storage_price_micros, node.egress_price_micros) == (STORAGE_PRICE, EGRESS_PRICE)
    node_update_listing(node=node, **base)  # None: unchanged
    node.refresh_from_db()
    assert (node.storage_price_micros, node.egress_price_micros) == (STORAGE_PRICE, EGRESS_PRICE)
    for bad in ({"storage_price_micros": -1}, {"egress_price_micros": 10_000_001}):
        with pytest.raises(ValidationFailed):
            node_update_listing(node=node, **base, **bad)
    node.refresh_from_db()
    assert (node.storage_price_micros, node.egress_price_micros) == (STORAGE_PRICE, EGRESS_PRICE)


def test_listing_api_patch_storage_egress_and_isolation(provider_client, provider, other_provider_client) -> None:
    node = NodeFactory(provider=provider, price_micros=400_000, min_bid_micros=100_000)
    url = f"/api/v1/nodes/{node.pk}/"
    body = {"storage_price_per_gb_month": "0.10", "egress_price_per_gb": "0.07"}
    response = provider_client.patch(url, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["storage_price_per_gb_month"] == "0.100000"
    assert response.json()["egress_price_per_gb"] == "0.070000"
    assert response.json()["price_per_gpu_hour"] == "0.400000"  # untouched
    for bad in (
        {"storage_price_per_gb_month": "-0.01"},
        {"egress_price_per_gb": "11"},
        {"egress_price_per_gb": "abc"},
        {"storage_price_per_gb_month": "0.0000001"},
    ):
        response = provider_client.patch(url, bad, format="json")
        assert response.status_code == 400, (bad, response.json())
    assert other_provider_client.patch(url, {"egress_price_per_gb": "5"}, format="json").status_code == 404
    node.refresh_from_db()
    assert (node.storage_price_micros, node.egress_price_micros) == (100_000, 70_000)


def test_listing_portal_form_saves_storage_egress(provider) -> None:
    node = NodeFactory(provider=provider, price_micros=400_000, min_bid_micros=100_000)
    client = Client()
    assert client.login(username=provider.user.username, password=PASSWORD)
    url = reverse("provider:node-detail", kwargs={"node_id": node.pk})
    form = {
        "price_per_gpu_hour": "0.40",
        "min_bid_per_gpu_hour": "0.10",
        "storage_price_per_gb_month": "0.12",
        "egress_price_per_gb": "0.05",
    }
    page = client.get(url).content.decode()
    assert 'name="storage_price_per_gb_month"' in page and 'name="egress_price_per_gb"' in page
    assert client.post(url, form).status_code == 302
    node.refresh_from_db()
    assert (node.storage_price_micros, node.egress_price_micros) == (120_000, 50_000)
    response = client.post(url, {**form, "egress_price_per_gb": "-1"})
    assert response.status_code == 200 and "egress_price_per_gb" in response.content.decode()
    node.refresh_from_db()
    assert node.egress_price_micros == 50_000
    other = Client()
    assert other.login(username=ProviderFactory().user.username, password=PASSWORD)
    assert other.post(url, {**form, "egress_price_per_gb": "9"}).status_code == 404
    node.refresh_from_db()
    assert node.egress_price_micros == 50_000


# --- agent reports and metering ------------------------------------------------------------------------------


def test_agent_report_fields_optional_and_bounded() -> None:
    base = report(5, 0)
    plain = AgentLeaseReportSerializer(data=base)
    assert plain.is_valid(), plain.errors
    assert plain.validated_data["storage_gb"] == 0 and plain.validated_data["egress_bytes"] == 0
    for bad in ({"storage_gb": "-1"}, {"storage_gb": "2000000"}, {"egress_bytes": -5}, {"egress_bytes": 10**16}):
        assert not AgentLeaseReportSerializer(data={**base, **bad}).is_valid(), bad


def test_storage_and_egress_metered_exactly_once() -> None:
    open_priced_lease(lease_ref=1)
    assert usage_ingest(node_id=1, reports=[priced_report(1, 0), priced_report(1, 1)]) == 2
    assert usage_ingest(node_id=1, reports=[priced_report(1, 1), priced_report(1, 0), priced_report(1, 2)]) == 1
    rows = UsageRecord.objects.filter(lease_ref=1)
    assert rows.count() == 3
    assert {(r.storage_gb_ms, r.egress_bytes) for r in rows} == {(GB_MS_PER_REPORT, BYTES_PER_REPORT)}
    with pytest.raises(ValidationFailed):
        usage_ingest(node_id=1, reports=[priced_report(1, 9, interval_start=None)])  # storage needs an interval
    with pytest.raises(ValidationFailed):
        usage_ingest(node_id=1, reports=[report(1, 9, egress_bytes=-1)])
    assert UsageRecord.objects.filter(lease_ref=1).count() == 3


def test_cumulative_rating_without_drift_and_ledger_verifies() -> None:
    open_priced_lease(lease_ref=1)
    reports = 7
    for seq in range(reports):
        usage_ingest(node_id=1, reports=[priced_report(1, seq)])
        lease_settle(lease_ref=1)
        usage_ingest(node_id=1, reports=[priced_report(1, seq)])  # duplicate: ignored
        lease_settle(lease_ref=1)
    account = LeaseAccount.objects.get(lease_ref=1)
    storage = STORAGE_PRICE * GB_MS_PER_REPORT * reports // MONTH_MS
    egress = EGRESS_PRICE * BYTES_PER_REPORT * reports // 10**9
    # per-report flooring would drift below the cumulative amounts
    assert storage > reports * (STORAGE_PRICE * GB_MS_PER_REPORT // MONTH_MS)
    assert egress > reports * (EGRESS_PRICE * BYTES_PER_REPORT // 10**9)
    assert account.charged_storage_micros == storage == 405
    assert account.charged_egress_micros == egress == 604
    assert account.charged_micros == 15_000 * reports + storage + egress
    assert account.charged_micros == account.fee_micros + account.reserve_micros + account.provider_micros
    settlements = Settlement.objects.filter(lease_account=account)
    assert settlements.count() == reports
    assert sum(s.storage_micros for s in settlements) == storage
    assert len({s.ledger_transaction_id for s in settlements}) == reports
    verified = ledger_verify()
    assert verified.ok, verified.violations


def test_storage_only_interval_settles_with_its_own_key() -> None:
    open_priced_lease(lease_ref=1)
    usage_ingest(node_id=1, reports=[priced_report(1, 0)])
    lease_settle(lease_ref=1)
    usage_ingest(node_id=1, reports=[priced_report(1, 1, gpu_seconds=0, egress_bytes=10**9)])
    lease_settle(lease_ref=1)
    account = LeaseAccount.objects.get(lease_ref=1)
    assert account.rated_gpu_ms == 15_000
    assert account.charged_egress_micros == EGRESS_PRICE * (BYTES_PER_REPORT + 10**9) // 10**9
    assert Settlement.objects.filter(lease_account=account).count() == 2
    assert ledger_verify().ok


def test_zero_prices_charge_nothing_extra() -> None:
    open_priced_lease(lease_ref=1, storage=0, egress=0)
    usage_ingest(node_id=1, reports=[priced_report(1, seq) for seq in range(3)])
    lease_settle(lease_ref=1)
    account = LeaseAccount.objects.get(lease_ref=1)
    assert account.charged_micros == 45_000
    assert account.charged_storage_micros == account.charged_egress_micros == 0
    invoice = _close_month(account)
    kinds = [line.kind for line in invoice.lines.all()]
    assert InvoiceLineKind.STORAGE not in kinds and InvoiceLineKind.EGRESS not in kinds
    assert invoice.usage_micros == 45_000
    assert invoice_reconcile(invoice=invoice) == []


# --- invoices ------------------------------------------------------------------------------------------------


def _close_month(account: LeaseAccount) -> Invoice:
    now = timezone.now()
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    Settlement.objects.update(created_at=start + timedelta(days=1))
    return invoice_close_month(
        customer_user=account.customer, year=start.year, month=start.month, now=start + timedelta(days=40)
    )


def test_invoice_shows_storage_and_egress_lines_and_reconciles() -> None:
    account = open_priced_lease(lease_ref=1)
    usage_ingest(node_id=1, reports=[priced_report(1, seq) for seq in range(3)])
    lease_settle(lease_ref=1)
    usage_ingest(node_id=1, reports=[priced_report(1, seq) for seq in range(3, 7)])
    lease_settle_final(
        lease_ref=1, job_ref=10, customer_user=account.customer, release_unused_hold_micros=10_000_000, failed=False
    )
    account.refresh_from_db()
    invoice = _close_month(account)
    lines = list(invoice.lines.all())
    by_kind = {line.kind: line for line in lines}
    assert by_kind[InvoiceLineKind.USAGE].amount_micros == 7 * 15_000
    assert by_kind[InvoiceLineKind.STORAGE].amount_micros == account.charged_storage_micros == 405
    assert by_kind[InvoiceLineKind.EGRESS].amount_micros == account.charged_egress_micros == 604
    assert by_kind[InvoiceLineKind.STORAGE].description.startswith("Storage (GB-month)")
    assert "0.004051 GB-month" in by_kind[InvoiceLineKind.STORAGE].description  # 100 GB × 105 s / 30 days
    assert by_kind[InvoiceLineKind.EGRESS].description.startswith("Egress (GB)")
    assert "0.008642 GB" in by_kind[InvoiceLineKind.EGRESS].description  # 7 × 1,234,567 bytes
    assert invoice.usage_micros == account.charged_micros
    assert sum(line.amount_micros for line in lines) == invoice.total_cents * 10_000
    assert invoice_reconcile(invoice=invoice) == []
    assert ledger_verify().ok

    client = Client()
    assert client.login(username=account.customer.username, password=PASSWORD)
    download = client.get(f"/app/invoices/{invoice.pk}/?format=csv")
    assert download.status_code == 200
    text = download.content.decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert any("Storage (GB-month)" in cell for row in rows for cell in row)
    assert any("Egress (GB)" in cell for row in rows for cell in row)
    other = Client()
    assert other.login(username=CustomerFactory().user.username, password=PASSWORD)
    assert other.get(f"/app/invoices/{invoice.pk}/?format=csv").status_code == 404


# --- end to end through the broker ---------------------------------------------------------------------------


def test_heartbeat_storage_and_egress_billed_at_the_listing_prices() -> None:
    from broker.services.agent import agent_heartbeat
    from broker.services.leases import lease_create

    customer: Any = CustomerFactory()
    wallet_credit(user=customer.user, amount_micros=100_000_000, key="fund")
    job = JobFactory(
        customer=customer,
        name="train",
        gpu_count=1,
        image="img",
        duration_seconds=3600,
        max_price_micros=3_600_000,
        held_micros=3_600_000,
    )
    escrow_hold(user=customer.user, amount_micros=3_600_000, key=f"job:{job.pk}:hold")
    node = NodeFactory(price_micros=3_600_000, storage_price_micros=STORAGE_PRICE, egress_price_micros=EGRESS_PRICE)
    now = timezone.now() - timedelta(minutes=10)  # the heartbeats below happened in the last ten minutes
    lease = lease_create(
        job_id=job.pk,
        node_id=node.pk,
        gpu_slots=[0],
        price_micros=3_600_000,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
    )
    # An honest agent heartbeats every 15 s; its first report (the workload starting) activates the lease and
    # starts the broker clock; the seven after it also hold 100 GB and send BYTES_PER_REPORT each.
    for i in range(8):
        end = now + timedelta(seconds=15 * (i + 1))
        report = {
            "lease_id": lease.pk,
            "seq": i,
            "gpu_seconds": 15.0,
            "utilisation": 0.9,
            "interval_start": end - timedelta(seconds=15),
            "interval_end": end,
            "state": "running",
        }
        if i:
            report |= {"storage_gb": Decimal(100), "egress_bytes": BYTES_PER_REPORT}
        agent_heartbeat(node=node, seq=i + 1, leases=[report, report], now=end)  # duplicates too
    lease_settle(lease_ref=lease.pk)
    account = LeaseAccount.objects.get(lease_ref=lease.pk)
    assert (account.storage_price_micros, account.egress_price_micros) == (STORAGE_PRICE, EGRESS_PRICE)
    assert (account.charged_storage_micros, account.charged_egress_micros) == (405, 604)
    # GPU time: claimed 8 × 15 s, observed 7 × 15 s (activation at the first report): billed what was observed
    assert (account.claimed_gpu_ms, account.rated_gpu_ms) == (120_000, 105_000)
    assert account.charged_micros == 7 * 15_000 + 405 + 604
    assert ledger_verify().ok


def test_offer_shows_storage_and_egress_prices() -> None:
    from broker.api.offers import OfferOut
    from broker.selectors.offers import offer_from_node

    node = NodeFactory(storage_price_micros=STORAGE_PRICE, egress_price_micros=EGRESS_PRICE)
    data = OfferOut(offer_from_node(node)).data
    assert (data["storage_price"], data["egress_price"]) == ("0.100000", "0.070000")
    assert OfferOut(offer_from_node(NodeFactory())).data["egress_price"] == "0.000000"
