"""Underwriting rules (financing/services/underwriting.py) and application submission."""

from decimal import Decimal
from typing import Any

import pytest

from common.errors import NotFound, PermissionDenied, ValidationFailed
from common.money import MICROS
from financing.models import AdvanceApplication, ApplicationStatus, ReservedContract
from financing.selectors.underwriting import (
    ContractBacking,
    EarningsHistory,
    MarketSnapshot,
    NodeStanding,
    UnderwritingInputs,
)
from financing.services.applications import advance_application_submit
from financing.services.underwriting import underwrite
from marketplace.services.assessment import fleet_assess
from tests.factories import CustomerFactory, GPUModelFactory, NodeFactory, ProviderFactory
from tests.financing.support import earn, season

pytestmark = pytest.mark.django_db

UNIT = 1599 * MICROS


def _inputs(
    *,
    trailing: int = 3000 * MICROS,
    recent: int = 1000 * MICROS,
    reliability: float = 0.99,
    verified: bool = True,
    price: int = 400_000,
    contracts: list[ContractBacking] | None = None,
    troubled: int = 0,
) -> UnderwritingInputs:
    return UnderwritingInputs(
        history=EarningsHistory(
            trailing_micros=trailing, recent_micros=recent, earlier_micros=trailing - recent, first_settlement_at=None
        ),
        market=MarketSnapshot(
            price_micros=price, price_source="market", listings=3, listed_gpus=12, used_gpu_ms=0, capacity_gpu_ms=0
        ),
        nodes=[NodeStanding(node_id=1, gpu_count=4, reliability=reliability, verified=verified)],
        contracts=contracts or [],
        troubled_advances=troubled,
    )


def test_offer_arithmetic_is_the_documented_rule() -> None:
    d = underwrite(inputs=_inputs(), tier="fine_tuning", count=4, unit_cost_micros=UNIT)
    assert d.offered and not d.reasons
    # E = 3000/3 × min(trend 1, 1) = $1000; N = 0.40 × 730 × 0.25 × 0.83 = $60.59 per GPU (floored micros).
    per_gpu = int(400_000 * 730 * Decimal("0.25") * Decimal("0.83"))
    monthly = 1000 * MICROS + 4 * per_gpu
    assert d.principal_micros == 4 * UNIT
    assert d.fee_micros == 4 * UNIT * 800 // 10_000  # base 8 %: verified, reliable, steady
    # 20 % would need (6396 + 511.68) / (0.2 × monthly) = 27.8 months > 24 → 30 %.
    assert d.withhold_bps == 3000
    repayment = monthly * 3000 // 10_000
    expected = (Decimal(d.principal_micros + d.fee_micros) / Decimal(repayment)).quantize(Decimal("0.1"), "ROUND_UP")
    assert d.expected_payoff_months == expected <= 24
    assert d.min_progress_micros == repayment
    assert any("expected payoff" in line for line in d.arithmetic)
    assert d.inputs["trend"] == "1.000" and d.inputs["utilisation_used"] == "0.250"


def test_risk_raises_the_fee_and_a_large_request_is_reduced() -> None:
    d = underwrite(
        inputs=_inputs(reliability=0.9, verified=False, recent=500 * MICROS),
        tier="training",
        count=40,
        unit_cost_micros=UNIT,
    )
    assert d.offered and d.count < 40
    assert d.fee_micros == d.principal_micros * (800 + 200 + 300 + 200) // 10_000
    assert any("offer reduced" in line for line in d.arithmetic)


@pytest.mark.parametrize(
    ("kwargs", "tier", "code"),
    [
        ({}, "unsuitable", "D1"),
        ({"trailing": 0, "recent": 0}, "fine_tuning", "D2"),
        ({"troubled": 1}, "fine_tuning", "D3"),
        ({"reliability": 0.7}, "fine_tuning", "D4"),
        ({"trailing": 30 * MICROS, "recent": 10 * MICROS}, "fine_tuning", "D5"),
        ({"price": 0}, "fine_tuning", "D6"),
    ],
)
def test_decline_reasons(kwargs: dict, tier: str, code: str) -> None:
    d = underwrite(inputs=_inputs(**kwargs), tier=tier, count=2, unit_cost_micros=UNIT)
    assert not d.offered
    assert any(r.startswith(code) for r in d.reasons), d.reasons


def test_no_history_is_financed_against_a_reserved_contract() -> None:
    contract = ContractBacking(contract_id=7, node_id=1, monthly_micros=1500 * MICROS, remaining_months=12)
    d = underwrite(
        inputs=_inputs(trailing=0, recent=0, contracts=[contract]), tier="fine_tuning", count=2, unit_cost_micros=UNIT
    )
    assert d.offered
    # Contract covers ≥ half of the principal: −2 % on the fee; no market projection without history.
    assert d.fee_micros == 2 * UNIT * 600 // 10_000
    assert any("not counted" in line for line in d.arithmetic)


def test_submit_stores_offer_with_inputs_from_real_settlements() -> None:
    model = GPUModelFactory()
    node = season(NodeFactory(gpu_model=model))
    provider = node.provider.user
    earn(provider_user=provider, node_id=node.pk, charge_micros=4_000 * MICROS)
    app = advance_application_submit(provider_user=provider, gpu_model_slug="rtx-4090", count=2, node_id=node.pk)
    assert app.status == ApplicationStatus.OFFERED
    # The provider's share is 83 % of the charge; all of it from one customer, so a quarter is discounted for
    # concentration (half of the excess over half).
    assert app.inputs["settled_90d_earnings"] == "$3,320.00"
    assert app.inputs["trailing_90d_earnings"] == "$2,490.00"
    assert app.principal_micros == 2 * UNIT and app.expected_payoff_months is not None


def test_submit_declines_without_history_and_saves_reasons() -> None:
    GPUModelFactory()
    provider = ProviderFactory().user
    app = advance_application_submit(provider_user=provider, gpu_model_slug="rtx-4090", count=1)
    assert app.status == ApplicationStatus.DECLINED and app.decline_reasons[0].startswith("D2")


def test_submit_against_reserved_contract_without_history() -> None:
    from django.utils import timezone

    model: Any = GPUModelFactory()
    node: Any = NodeFactory(gpu_model=model)
    customer: Any = CustomerFactory().user
    ReservedContract.objects.create(
        customer=customer,
        provider=node.provider.user,
        node=node,
        gpu_model=model,
        gpu_count=4,
        term_months=12,
        list_price_micros=400_000,
        discount_bps=1500,
        monthly_micros=1000 * MICROS,
        starts_at=timezone.now(),
        ends_at=timezone.now(),
    )
    app = advance_application_submit(provider_user=node.provider.user, gpu_model_slug="rtx-4090", count=1)
    assert app.status == ApplicationStatus.OFFERED and app.reserved_contract is not None


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"gpu_model_slug": "no-such-gpu", "count": 1}, ValidationFailed),
        ({"gpu_model_slug": "rtx-4090", "count": 0}, ValidationFailed),
        ({"gpu_model_slug": "rtx-4090", "count": -3}, ValidationFailed),
        ({"gpu_model_slug": "rtx-4090", "count": 250}, ValidationFailed),  # $399,750 fine, but…
        ({"gpu_model_slug": "rtx-4090", "count": 10_000}, ValidationFailed),
    ],
)
def test_bad_input_saves_nothing(kwargs: dict, error: type) -> None:
    GPUModelFactory()
    GPUModelFactory(slug="h100-sxm", name="H100 SXM", launch_price_usd=30_000, tier="training")
    provider = ProviderFactory().user
    if kwargs.get("count") == 250:
        kwargs = {"gpu_model_slug": "h100-sxm", "count": 250}  # 250 × $30,000 = $7.5M: beyond any offer
    with pytest.raises(error):
        advance_application_submit(provider_user=provider, **kwargs)
    assert AdvanceApplication.objects.count() == 0


def test_someone_elses_node_or_assessment_is_not_found() -> None:
    GPUModelFactory()
    mine, theirs = ProviderFactory(), NodeFactory()
    with pytest.raises(NotFound):
        advance_application_submit(provider_user=mine.user, gpu_model_slug="rtx-4090", count=1, node_id=theirs.pk)
    other_assessment = fleet_assess(provider=theirs.provider, lines=[("RX 580 8GB", 10)])
    with pytest.raises(NotFound):
        advance_application_submit(provider_user=mine.user, assessment_id=other_assessment.pk)
    with pytest.raises(PermissionDenied):
        advance_application_submit(provider_user=CustomerFactory().user, gpu_model_slug="rtx-4090", count=1)
    assert AdvanceApplication.objects.count() == 0
