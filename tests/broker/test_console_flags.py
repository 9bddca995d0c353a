"""The console's flags page: usage anomalies and node changes, side by side, for staff only (issue 12 points 2–4)."""

from typing import Any

import pytest
from django.test import Client

from billing.models import UsageAnomalyKind
from billing.services.metering import usage_anomaly_record
from marketplace.models import NodeChange
from tests.factories import PASSWORD, NodeFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_staff_see_capped_usage_and_node_changes_side_by_side() -> None:
    node: Any = NodeFactory(name="rig-flagged")
    usage_anomaly_record(
        kind=UsageAnomalyKind.OVER_HOLD,
        lease_ref=41,
        job_ref=None,
        node_id=node.pk,
        provider_id=node.provider.user_id,
        claimed_micros=2_500_000,
        charged_micros=600_000,
        detail="usage of lease 41 worth $2.50 exceeds the $0.60 left of job 7's escrow hold; capped",
    )
    NodeChange.objects.create(
        node=node, provider=node.provider, fields=["cpu_cores"], old={"cpu_cores": 32}, new={"cpu_cores": 4096}
    )
    staff = UserFactory(is_staff=True)
    client = Client()
    client.force_login(staff)
    page = client.get("/console/flags/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "exceeds the $0.60 left" in html and "$2.50" in html
    assert "rig-flagged" in html and "cpu_cores" in html and "4096" in html and "not yet: verify the node again" in html


def test_the_flags_page_is_staff_only(customer: Any) -> None:
    client = Client()
    assert client.get("/console/flags/").status_code == 302  # to the login page
    client.login(username=customer.user.username, password=PASSWORD)
    assert client.get("/console/flags/").status_code == 403
    provider = NodeFactory().provider.user
    client.force_login(provider)
    assert client.get("/console/flags/").status_code == 403
