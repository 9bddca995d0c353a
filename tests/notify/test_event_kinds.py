"""Each event kind beyond job state changes reaches the subscribed user's webhook once, signed; another
user's endpoint gets nothing."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from billing.models import AccountKind
from billing.services.ledger import account_get, ledger_transfer
from billing.services.payouts import payout_create
from billing.services.wallet import escrow_hold, wallet_credit
from common.money import MICROS
from financing.services.advances import advance_staff_action
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.lenders import advance_fund
from marketplace.services.reliability import nodes_mark_offline
from notify.models import WebhookDelivery
from notify.services.events import endpoint_add, preference_set, webhooks_retry_due
from tests.factories import CustomerFactory, GPUModelFactory, NodeFactory, ProviderFactory
from tests.financing.support import earn, lender, season, staff_user
from tests.notify.test_webhooks import Receiver, verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    mine, other = Receiver(204), Receiver(204)
    yield mine, other
    mine.server.shutdown()
    other.server.shutdown()


def _assert_one(mine: Receiver, other: Receiver, secret: str, kind: str) -> dict[str, Any]:
    webhooks_retry_due(now=timezone.now() + timedelta(days=1))  # nothing pending: nothing resent
    assert len(mine.requests) == 1
    assert mine.requests[0]["headers"]["X-RigShift-Event"] == kind
    body = verify(secret, mine.requests[0])
    assert body["kind"] == kind
    assert other.requests == []
    return body


def test_node_offline_is_sent_once_to_its_provider(
    receivers: tuple[Receiver, Receiver], django_capture_on_commit_callbacks
) -> None:
    mine, other = receivers
    node: Any = NodeFactory(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    endpoint = endpoint_add(user=node.provider.user, url=mine.url)
    stranger: Any = ProviderFactory()
    endpoint_add(user=stranger.user, url=other.url)
    preference_set(user=stranger.user, email_events=[], webhook_events=["node.offline"])
    with django_capture_on_commit_callbacks(execute=True):
        assert nodes_mark_offline() == [node.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert nodes_mark_offline() == []  # already offline: no second event
    body = _assert_one(mine, other, endpoint.secret, "node.offline")
    assert body["data"]["node_id"] == node.pk
    assert WebhookDelivery.objects.count() == 1


def test_payout_created_is_sent_once_to_its_provider(
    receivers: tuple[Receiver, Receiver], django_capture_on_commit_callbacks
) -> None:
    mine, other = receivers
    provider: Any = ProviderFactory()
    stranger: Any = ProviderFactory()
    endpoint = endpoint_add(user=provider.user, url=mine.url)
    endpoint_add(user=stranger.user, url=other.url)
    ledger_transfer(
        key="test-fund-payable",
        kind="test",
        legs=[
            (account_get(kind=AccountKind.GATEWAY_CLEARING), -5_000_000),
            (account_get(kind=AccountKind.PROVIDER_PAYABLE, user=provider.user), 5_000_000),
        ],
        memo="test",
        metadata={},
    )
    with django_capture_on_commit_callbacks(execute=True):
        payout = payout_create(provider_user=provider.user)
    body = _assert_one(mine, other, endpoint.secret, "payout.updated")
    assert body["data"]["payout_id"] == payout.pk and body["data"]["status"] == "pending"
    assert body["data"]["amount_micros"] == 5_000_000


def test_wallet_low_balance_is_sent_once_when_a_debit_crosses_the_threshold(
    receivers: tuple[Receiver, Receiver], django_capture_on_commit_callbacks, settings: Any
) -> None:
    settings.RIGSHIFT_LOW_BALANCE_USD = 10.0
    mine, other = receivers
    customer: Any = CustomerFactory()
    stranger: Any = CustomerFactory()
    endpoint = endpoint_add(user=customer.user, url=mine.url)
    endpoint_add(user=stranger.user, url=other.url)
    wallet_credit(user=customer.user, amount_micros=15_000_000, key="test-topup")
    wallet_credit(user=stranger.user, amount_micros=15_000_000, key="test-topup-2")
    with django_capture_on_commit_callbacks(execute=True):
        escrow_hold(user=customer.user, amount_micros=3_000_000, key="h1")  # $12 left: above
        escrow_hold(user=customer.user, amount_micros=5_000_000, key="h2")  # $7 left: crossed
        escrow_hold(user=customer.user, amount_micros=5_000_000, key="h2")  # replayed key: nothing new
        escrow_hold(user=customer.user, amount_micros=1_000_000, key="h3")  # $6: still low, no new event
    body = _assert_one(mine, other, endpoint.secret, "wallet.low_balance")
    assert body["data"] == {"balance_micros": 7_000_000, "threshold_micros": 10_000_000}


def test_financing_funded_disbursed_and_defaulted_are_sent_once_each_to_the_provider(
    receivers: tuple[Receiver, Receiver], django_capture_on_commit_callbacks
) -> None:
    mine, other = receivers
    node = season(NodeFactory(gpu_model=GPUModelFactory()))
    for _ in range(3):
        earn(provider_user=node.provider.user, node_id=node.pk, charge_micros=3_000 * MICROS)
    app = advance_application_submit(provider_user=node.provider.user, gpu_model_slug="rtx-4090", count=1)
    advance = advance_application_approve(staff_user=staff_user(), application_id=app.pk)
    endpoint = endpoint_add(user=node.provider.user, url=mine.url)
    funder = lender(capital_micros=5_000 * MICROS)
    endpoint_add(user=funder, url=other.url)  # a funder is another user: the provider's events are not its own
    with django_capture_on_commit_callbacks(execute=True):
        advance = advance_fund(lender_user=funder, advance_id=advance.pk)
    assert advance.status == "active"
    with django_capture_on_commit_callbacks(execute=True):
        advance_staff_action(staff_user=staff_user(), advance_id=advance.pk, action="default", note="test")
    webhooks_retry_due(now=timezone.now() + timedelta(days=1))
    bodies = [verify(endpoint.secret, r) for r in mine.requests]
    assert [b["data"]["event"] for b in bodies] == ["funded", "disbursed", "defaulted"]
    assert {r["headers"]["X-RigShift-Event"] for r in mine.requests} == {"financing.updated"}
    assert other.requests == []
