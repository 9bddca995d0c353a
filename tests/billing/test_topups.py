from typing import Any

import pytest
from django.test import override_settings

from billing.gateways import get_gateway
from billing.gateways.base import GatewayResult
from billing.gateways.local import LocalGateway
from billing.models import LedgerTransaction, TopUp, TopUpStatus
from billing.selectors.wallet import wallet_balance
from billing.services import topups
from billing.services.topups import topup_amount_parse, topup_complete, topup_create
from common.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def test_local_gateway_settles_at_once_and_credits_once(customer: Any) -> None:
    assert isinstance(get_gateway(), LocalGateway)
    topup = topup_create(user=customer.user, amount_micros=50_000_000)
    assert topup.status == TopUpStatus.SUCCEEDED
    assert topup.gateway == "local"
    assert topup.ledger_transaction is not None
    assert topup.ledger_transaction.idempotency_key == f"topup:{topup.pk}"
    assert wallet_balance(user=customer.user).available_micros == 50_000_000
    again = topup_complete(topup_id=topup.pk, gateway_ref="replayed")
    assert again.status == TopUpStatus.SUCCEEDED
    assert wallet_balance(user=customer.user).available_micros == 50_000_000
    assert LedgerTransaction.objects.filter(idempotency_key=f"topup:{topup.pk}").count() == 1


class PendingGateway:
    name = "fake-checkout"

    def create_topup(self, topup: TopUp) -> GatewayResult:
        return GatewayResult(status=TopUpStatus.PENDING, ref=f"cs_{topup.pk}", checkout_url="https://pay.example/cs")


def test_checkout_gateway_credits_only_on_completion(customer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topups, "get_gateway", PendingGateway)
    topup = topup_create(user=customer.user, amount_micros=20_000_000)
    assert topup.status == TopUpStatus.PENDING
    assert topup.checkout_url == "https://pay.example/cs"
    assert wallet_balance(user=customer.user).available_micros == 0
    topup_complete(topup_id=topup.pk, gateway_ref="pi_1")
    topup_complete(topup_id=topup.pk, gateway_ref="pi_1")
    assert wallet_balance(user=customer.user).available_micros == 20_000_000
    topup.refresh_from_db()
    assert topup.gateway_ref == "pi_1"


@override_settings(STRIPE_SECRET_KEY="sk_test_x")
def test_stripe_key_selects_the_stripe_gateway() -> None:
    assert get_gateway().name == "stripe"


@pytest.mark.parametrize("amount", ["0", "-5", "100000.01", "1.234", "abc", "NaN", "Infinity", "", True, None, 1.5])
def test_bad_amounts_are_refused(amount: Any) -> None:
    with pytest.raises(ValidationFailed):
        topup_amount_parse(amount=amount)


def test_good_amounts() -> None:
    assert topup_amount_parse(amount="50.00") == 50_000_000
    assert topup_amount_parse(amount="100000") == 100_000_000_000
    assert topup_amount_parse(amount="0.01") == 10_000
