"""Financing's background work, enqueued by task name after commit. Services call these; they never import
`financing.tasks` (the convention: common/dispatch.py). Every task sent here has a beat entry that catches up."""

from __future__ import annotations

from common.dispatch import send_on_commit

DISBURSE_ADVANCE = "financing.tasks.disburse_advance"
SEND_LENDER_PAYOUT = "financing.tasks.send_lender_payout"


def disburse_advance(advance_id: int) -> None:
    """After commit, (re)try the disbursement of a fully funded advance (the hourly disburse_funded catches up)."""
    send_on_commit(DISBURSE_ADVANCE, args=[advance_id])


def send_lender_payout(payout_id: int) -> None:
    """After commit, ask the gateway to send a pending lender payout (the lender_payouts run catches up)."""
    send_on_commit(SEND_LENDER_PAYOUT, args=[payout_id])
