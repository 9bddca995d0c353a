"""Payment gateways. `get_gateway()` picks Stripe when STRIPE_SECRET_KEY is set, else the local gateway."""

import importlib

from django.conf import settings

from billing.gateways.base import GatewayResult, PaymentGateway
from billing.gateways.local import LocalGateway

__all__ = ["GatewayResult", "LocalGateway", "PaymentGateway", "get_gateway"]


def get_gateway() -> PaymentGateway:
    if getattr(settings, "STRIPE_SECRET_KEY", ""):
        stripe_module = importlib.import_module("billing.gateways.stripe")
        gateway: PaymentGateway = stripe_module.StripeGateway()
        return gateway
    return LocalGateway()
