"""Arm's-length earnings only: related parties, seasoning, concentration and risk flags, in the offer's arithmetic;
a wash-trading provider is declined with the reason."""

from typing import Any

import pytest
from django.contrib.auth.signals import user_logged_in
from django.test import RequestFactory

from common.money import MICROS
from financing.models import ApplicationStatus, PartySignal, PartySignalKind
from financing.selectors.parties import mail_domain, related_parties
from financing.selectors.risk_flags import provider_risk_flags
from financing.services.applications import advance_application_submit
from financing.services.parties import party_signal_record
from financing.services.risk import RiskFlags, register_risk_flag_source
from tests.factories import CustomerFactory, NodeFactory, ProviderFactory, UserFactory
from tests.financing.support import earn, season

pytestmark = pytest.mark.django_db


def _provider(email: str = "ops@hashfarm.io") -> Any:
    provider = ProviderFactory(user=UserFactory(email=email))
    node = season(NodeFactory(provider=provider))
    return provider.user, node


def _customer(email: str) -> Any:
    return CustomerFactory(user=UserFactory(email=email)).user


def test_the_related_party_rule() -> None:
    me, _ = _provider("dana@hashfarm.io")
    same_domain = _customer("buyer@hashfarm.io")
    same_address = _customer("DANA@hashfarm.io")
    gmail_a, gmail_b = _customer("a@gmail.com"), _customer("b@gmail.com")
    party_signal_record(user=me, kind=PartySignalKind.NETWORK, value="81.2.69.160")
    party_signal_record(user=gmail_a, kind=PartySignalKind.NETWORK, value="81.2.69.160")
    party_signal_record(user=me, kind=PartySignalKind.PAYMENT_METHOD, value="card_fp_123")
    party_signal_record(user=gmail_b, kind=PartySignalKind.PAYMENT_METHOD, value="CARD_FP_123")
    stranger = _customer("ml@lab.ai")
    party_signal_record(user=stranger, kind=PartySignalKind.NETWORK, value="216.160.83.56")
    found = related_parties(
        provider_user=me, customer_ids=[me.pk, same_domain.pk, same_address.pk, gmail_a.pk, gmail_b.pk, stranger.pk]
    )
    assert found[me.pk] == ["same person"]
    assert found[same_address.pk] == ["same person"]
    assert found[same_domain.pk] == ["same e-mail domain (hashfarm.io)"]
    assert found[gmail_a.pk] == ["same network address"]
    assert found[gmail_b.pk] == ["same payment method"]
    assert stranger.pk not in found
    assert mail_domain("x@gmail.com") is None and mail_domain("x@demo.rigshift.test") is None
    assert mail_domain("x@Lab.AI") == "lab.ai"


def test_private_addresses_are_not_signals_and_values_are_stored_hashed() -> None:
    user = UserFactory()
    assert party_signal_record(user=user, kind=PartySignalKind.NETWORK, value="127.0.0.1") is None
    assert party_signal_record(user=user, kind=PartySignalKind.NETWORK, value="10.1.2.3") is None
    assert party_signal_record(user=user, kind=PartySignalKind.NETWORK, value="not an ip") is None
    signal = party_signal_record(user=user, kind=PartySignalKind.NETWORK, value="81.2.69.160")
    assert signal is not None and "81.2.69.160" not in signal.value_hash and len(signal.value_hash) == 64


def test_a_login_records_its_network_address() -> None:
    user = UserFactory()
    request = RequestFactory().get("/", REMOTE_ADDR="89.160.20.112")
    user_logged_in.send(sender=type(user), request=request, user=user)
    assert PartySignal.objects.filter(user_id=user.pk, kind=PartySignalKind.NETWORK).count() == 1


def test_a_wash_trading_provider_is_declined_with_the_reason() -> None:
    """A provider books its own nodes through a second account (logged in from its own address) to manufacture
    history: those earnings do not count, and the application is declined, naming the account and the rule."""
    me, node = _provider("founder@gmail.com")
    sock = _customer("totally.unrelated@outlook.com")
    for user in (me, sock):
        party_signal_record(user=user, kind=PartySignalKind.NETWORK, value="81.2.69.142")
    honest = _customer("team@vision-lab.ai")
    earn(provider_user=me, node_id=node.pk, charge_micros=9_000 * MICROS, customer=sock)
    earn(provider_user=me, node_id=node.pk, charge_micros=1_000 * MICROS, customer=honest)
    app = advance_application_submit(provider_user=me, gpu_model_slug="rtx-4090", count=1)
    assert app.status == ApplicationStatus.DECLINED
    reason = next(r for r in app.decline_reasons if r.startswith("D7"))
    assert f"customer #{sock.pk}: same network address" in reason
    assert app.inputs["related_party_earnings"] == "$7,470.00"  # 83 % of $9,000: not counted
    assert app.inputs["related_parties"] == {str(sock.pk): ["same network address"]}
    assert any("related parties $7,470.00" in line for line in app.arithmetic)


def test_seasoning_and_concentration_are_in_the_arithmetic() -> None:
    me, old = _provider()
    new = NodeFactory(provider=old.provider)  # registered today
    big, small = _customer("a@lab-one.ai"), _customer("b@lab-two.ai")
    earn(provider_user=me, node_id=old.pk, charge_micros=3_000 * MICROS, customer=big)
    earn(provider_user=me, node_id=old.pk, charge_micros=1_000 * MICROS, customer=small)
    earn(provider_user=me, node_id=new.pk, charge_micros=2_000 * MICROS, customer=small)
    app = advance_application_submit(provider_user=me, gpu_model_slug="rtx-4090", count=1)
    # Arm's length and seasoned: $2,490 + $830 = $3,320; the big customer's excess over half ($830) is halved.
    assert app.inputs["unseasoned_node_earnings"] == "$1,660.00"
    assert app.inputs["concentration_discount"] == "$415.00"
    assert app.inputs["trailing_90d_earnings"] == "$2,905.00"
    line = app.arithmetic[0]
    assert "unseasoned nodes (< 30 days) $1,660.00" in line and "concentration discount $415.00" in line
    assert "top customer 75%" in line and line.endswith("counted $2,905.00")


def test_risk_flags_raise_the_fee_and_three_decline() -> None:
    me, node = _provider()
    for n in range(3):
        earn(provider_user=me, node_id=node.pk, charge_micros=3_000 * MICROS, customer=_customer(f"c@lab{n}.ai"))
    clean = advance_application_submit(provider_user=me, gpu_model_slug="rtx-4090", count=1)
    assert clean.inputs["risk_flags"] == {"anomalies": 0, "hardware_changes": 0, "details": []}  # none recorded
    try:
        register_risk_flag_source(lambda *, provider_user, since: RiskFlags(anomalies=1, hardware_changes=1))
        flagged = advance_application_submit(provider_user=me, gpu_model_slug="rtx-4090", count=1)
        assert flagged.fee_micros == clean.fee_micros + flagged.principal_micros * 200 // 10_000
        assert any("+2% 2 risk flag(s)" in line for line in flagged.arithmetic)
        register_risk_flag_source(lambda *, provider_user, since: RiskFlags(anomalies=2, hardware_changes=1))
        declined = advance_application_submit(provider_user=me, gpu_model_slug="rtx-4090", count=1)
        assert declined.status == ApplicationStatus.DECLINED
        assert any(r.startswith("D8") for r in declined.decline_reasons)
    finally:
        register_risk_flag_source(provider_risk_flags)  # the source FinancingConfig.ready registers


def test_recorded_anomalies_and_node_changes_count_against_the_provider() -> None:
    """The registered source reads what billing and marketplace recorded: capped usage and node changes."""
    from billing.models import UsageAnomalyKind
    from billing.services.metering import usage_anomaly_record
    from marketplace.models import NodeChange

    me, node = _provider()
    for n in range(3):
        earn(provider_user=me, node_id=node.pk, charge_micros=3_000 * MICROS, customer=_customer(f"c@lab{n}.ai"))
    for lease_ref in (1, 1, 2):  # the same lease capped twice is one flag
        usage_anomaly_record(
            kind=UsageAnomalyKind.OVER_HOLD, lease_ref=lease_ref, provider_id=me.pk, detail=f"capped {lease_ref}"
        )
    flagged = advance_application_submit(provider_user=me, gpu_model_slug="rtx-4090", count=1)
    assert flagged.inputs["risk_flags"]["anomalies"] == 2 and flagged.inputs["risk_flags"]["hardware_changes"] == 0
    NodeChange.objects.create(node=node, provider=node.provider, fields=["cpu_cores"], old={"cpu_cores": 32}, new={})
    declined = advance_application_submit(provider_user=me, gpu_model_slug="rtx-4090", count=1)
    assert declined.status == ApplicationStatus.DECLINED
    assert any(r.startswith("D8") for r in declined.decline_reasons)
    assert any("node" in line and "changed" in line for line in declined.inputs["risk_flags"]["details"])
