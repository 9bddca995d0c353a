import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import AccountKind, Invoice, InvoiceLineKind, Settlement, SlaCredit
from billing.selectors.invoices import provider_statement
from billing.services.invoices import (
    invoice_close_month,
    invoice_on_demand,
    invoice_reconcile,
    invoices_close_previous_month,
)
from billing.services.ledger import account_get, ledger_transfer
from billing.services.metering import usage_ingest
from billing.services.settlement import lease_settle_final, usage_settle_pending
from tests.billing.helpers import open_lease, report
from tests.factories import PASSWORD, CustomerFactory, ProviderFactory

pytestmark = pytest.mark.django_db


def fund_reserve(micros: int) -> None:
    ledger_transfer(
        key=f"reserve-seed:{micros}",
        kind="test",
        legs=[
            (account_get(kind=AccountKind.PLATFORM_REVENUE), -micros),
            (account_get(kind=AccountKind.RESERVE_FUND), micros),
        ],
    )


def usage_month(customer=None):
    """Two leases (one fails with its node) in a month, sub-cent prices so rounding matters."""
    a = open_lease(lease_ref=1, price_micros=1_234_567, gpu_count=2, customer=customer)
    b = open_lease(lease_ref=2, price_micros=333_333, customer=a.customer, provider=a.provider, node_id=2)
    usage_ingest(node_id=1, reports=[report(1, s, gpu_seconds="7.7") for s in range(5)])
    usage_ingest(node_id=2, reports=[report(2, s, gpu_seconds="13.3") for s in range(3)])
    usage_settle_pending()
    fund_reserve(5_000_000)
    lease_settle_final(
        lease_ref=2, job_ref=20, customer_user=a.customer, release_unused_hold_micros=b.hold, failed=True
    )
    return a


def test_monthly_invoice_lines_credits_rounding_and_reconciliation() -> None:
    lease = usage_month()
    now = timezone.now()
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    Settlement.objects.update(created_at=start + timedelta(days=1))
    SlaCredit.objects.update(created_at=start + timedelta(days=2))
    later = start + timedelta(days=40)
    assert invoices_close_previous_month(now=later) == 1
    invoice = Invoice.objects.get()
    again = invoice_close_month(customer_user=lease.customer, year=start.year, month=start.month, now=later)
    assert again.pk == invoice.pk  # closed once
    lines = list(invoice.lines.all())
    usage = [line for line in lines if line.kind == InvoiceLineKind.USAGE]
    assert [line.lease_ref for line in usage] == [1, 2]
    assert usage[0].gpu_count == 2 and usage[0].seconds == pytest.approx(19.25)  # 38.5 GPU-s on 2 GPUs
    assert usage[0].amount_micros == 1_234_567 * 38_500 // 3_600_000
    assert usage[0].rate_micros == 1_234_567
    credit = [line for line in lines if line.kind == InvoiceLineKind.CREDIT]
    assert len(credit) == 1 and credit[0].amount_micros == -SlaCredit.objects.get().credit_micros
    assert invoice.exact_total_micros == invoice.usage_micros - invoice.credits_micros
    assert invoice.total_cents * 10_000 == invoice.exact_total_micros + invoice.rounding_micros
    assert abs(invoice.rounding_micros) <= 5_000
    assert sum(line.amount_micros for line in lines) == invoice.total_cents * 10_000
    assert invoice_reconcile(invoice=invoice) == []


def test_on_demand_statement_covers_month_to_date() -> None:
    lease = usage_month()
    invoice = invoice_on_demand(customer_user=lease.customer)
    assert invoice.usage_micros == sum(s.charged_micros for s in Settlement.objects.all())
    assert invoice_reconcile(invoice=invoice) == []


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_invoice_pages_csv_and_isolation() -> None:
    lease = usage_month(customer=CustomerFactory().user)
    client = login(lease.customer)
    response = client.post("/app/invoices/")
    assert response.status_code == 302
    invoice = Invoice.objects.get()
    page = client.get(f"/app/invoices/{invoice.pk}/")
    assert page.status_code == 200
    assert invoice.number in page.content.decode() and 'id="reconciled"' in page.content.decode()
    listing = client.get("/app/invoices/")
    assert invoice.number in listing.content.decode()
    download = client.get(f"/app/invoices/{invoice.pk}/?format=csv")
    assert download["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[0][0] == "invoice" and rows[-1][3] == "total"
    # another customer: 404; a provider: 403; anonymous: login
    other = login(CustomerFactory().user)
    assert other.get(f"/app/invoices/{invoice.pk}/").status_code == 404
    assert other.get(f"/app/invoices/{invoice.pk}/?format=csv").status_code == 404
    assert invoice.number not in other.get("/app/invoices/").content.decode()
    assert login(ProviderFactory().user).get("/app/invoices/").status_code == 403
    assert Client().get("/app/invoices/").status_code == 302


def test_provider_earnings_statement_and_page() -> None:
    lease = usage_month()
    now = timezone.now()
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    s = provider_statement(provider_user=lease.provider, period_start=start, period_end=start + timedelta(days=32))
    assert s.gross_micros == s.fee_micros + s.reserve_micros + s.earnings_micros > 0
    assert s.balance_micros == s.earnings_micros - s.sla_penalties_micros
    client = login(lease.provider)
    page = client.get("/provider/earnings/")
    assert page.status_code == 200 and "Earnings statement" in page.content.decode()
    assert login(lease.customer).get("/provider/earnings/").status_code == 403
    # another provider sees its own (empty) statement, not A's numbers
    other = login(ProviderFactory().user).get("/provider/earnings/").content.decode()
    assert "No leases yet." in other
    # local gateway: setting up payouts marks the account ready
    assert client.post("/provider/earnings/").status_code == 302
    lease.provider.provider.refresh_from_db()
    assert lease.provider.provider.payout_account_ready
