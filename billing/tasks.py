"""Billing's Celery tasks: thin wrappers around services, idempotent, safe to retry."""

from celery import shared_task

from billing.services.settlement import lease_settle, usage_settle_pending


@shared_task(acks_late=True, ignore_result=True)
def settle_usage() -> int:
    """Beat (every 30 s): settle all open leases with pending usage."""
    return usage_settle_pending()


@shared_task(acks_late=True, ignore_result=True)
def settle_lease(lease_ref: int) -> int:
    return len(lease_settle(lease_ref=lease_ref))


@shared_task(acks_late=True, ignore_result=True)
def payout_run_task() -> int:
    """Beat (hourly): pay providers above the threshold, everyone on the weekly day."""
    from billing.services.payouts import payout_run

    return len(payout_run())


@shared_task(acks_late=True, ignore_result=True)
def invoices_close_month_task() -> int:
    """Beat (daily): close last month's invoices (idempotent: a closed month is not closed again)."""
    from billing.services.invoices import invoices_close_previous_month

    return invoices_close_previous_month()
