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
from marketplace.services.reliability import nodes_mark_offline
from notify.models import WebhookDelivery
from notify.services.events import endpoint_add, preference_set, webhooks_retry_due
from tests.factories import NodeFactory, ProviderFactory
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
