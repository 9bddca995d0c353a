"""The payment gateway interface: the local gateway and Stripe implement the same calls."""

from dataclasses import dataclass
from typing import Protocol

from billing.models import TopUp, TopUpStatus


@dataclass(frozen=True)
class GatewayResult:
    """What a gateway says about a new top-up.

    `status` SUCCEEDED means the money is in (the local gateway); PENDING means the customer must finish at
    `checkout_url` and the wallet is credited later, only by the verified webhook (`topup_complete`).
    """

    status: TopUpStatus
    ref: str
    checkout_url: str = ""


class PaymentGateway(Protocol):
    name: str

    def create_topup(self, topup: TopUp) -> GatewayResult:
        """Start collecting `topup.amount_micros` from `topup.user`; must be safe to retry for the same top-up."""
        ...
