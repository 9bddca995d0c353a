"""Financing's Celery tasks: thin wrappers around services, idempotent, safe to retry."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def financing_review_task() -> int:
    """Beat (daily): review open advances (collateral, 60-day minimum progress, delinquency/default policy)."""
    from financing.services.advances import advances_review

    return advances_review()


@shared_task(acks_late=True, ignore_result=True)
def reserved_contracts_charge_task() -> int:
    """Beat (daily): charge reserved-contract months that have come due (a month is charged once)."""
    from financing.services.reserved import reserved_contracts_charge_due

    return reserved_contracts_charge_due()
