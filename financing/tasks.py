"""Financing's Celery tasks: thin wrappers around services, idempotent, safe to retry (a retried disbursement or
payout finds it done, and the gateway call carries the same idempotency key: nothing is paid twice)."""

import logging

from celery import shared_task

from common.errors import Conflict

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def financing_review_task() -> int:
    """Beat (daily): deliver and release contract demand past its deadline, then review open advances
    (collateral, 60-day minimum progress, delinquency/default policy)."""
    from financing.services.advances import advances_review
    from financing.services.demand import demands_review

    demands_review()
    return advances_review()


@shared_task(acks_late=True, ignore_result=True)
def reserved_contracts_charge_task() -> int:
    """Beat (daily): charge reserved-contract months that have come due (a month is charged once)."""
    from financing.services.reserved import reserved_contracts_charge_due

    return reserved_contracts_charge_due()


@shared_task(acks_late=True, ignore_result=True)
def disburse_advance(advance_id: int) -> bool:
    """Disburse a fully funded advance; a gateway refusal is logged and left to the hourly retry."""
    from financing.models import AdvanceStatus
    from financing.services.advances import advance_disburse

    try:
        return advance_disburse(advance_id=advance_id).status == AdvanceStatus.ACTIVE
    except Conflict as exc:
        logger.warning("disbursement of advance %s deferred: %s", advance_id, exc)
        return False


@shared_task(acks_late=True, ignore_result=True)
def disburse_funded_task() -> int:
    """Beat (hourly): retry every fully funded advance the gateway has not paid out yet."""
    from financing.services.advances import advances_disburse_funded

    return advances_disburse_funded()


@shared_task(acks_late=True, ignore_result=True)
def send_lender_payout(payout_id: int) -> str:
    """Send one pending lender payout through the gateway (idempotent: a sent payout is left alone)."""
    from financing.services.lender_payouts import lender_payout_send

    return str(lender_payout_send(payout_id=payout_id).status)


@shared_task(acks_late=True, ignore_result=True)
def lender_payouts_task() -> int:
    """Beat (hourly): pay lenders their received repayments on the schedule (weekly, once a day at most)."""
    from financing.services.lender_payouts import lender_payouts_run

    return len(lender_payouts_run())
