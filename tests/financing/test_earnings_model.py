"""One earnings model: the fleet assessment's upgrade path shows what an application with the same inputs is
offered (marketplace/services/earnings.py, financing/services/underwriting.py); a farm is financed in several
applications of at most 256 GPUs."""

from decimal import Decimal
from typing import Any

import pytest

from common.errors import ValidationFailed
from common.money import MICROS
from financing.models import ApplicationStatus
from financing.services.applications import advance_application_submit
from marketplace.models import GPUModel
from marketplace.services.assessment import fleet_assess
from marketplace.services.earnings import gpu_monthly_share_micros, payoff_months, provider_share_fraction
from tests.factories import CustomerFactory, NodeFactory, ProviderFactory
from tests.financing.support import earn, season

pytestmark = pytest.mark.django_db


def provider_with_history(*, customers: int = 4, per_customer: int = 3_000 * MICROS) -> Any:
    """A provider with a seasoned RTX 4090 node and settled earnings from several unrelated customers."""
    rtx = GPUModel.objects.get(slug="rtx-4090")
    node = season(NodeFactory(gpu_model=rtx, provider=ProviderFactory()))
    for _ in range(customers):
        earn(provider_user=node.provider.user, node_id=node.pk, charge_micros=per_customer)
    return node.provider


def test_assessment_payback_equals_the_offer_for_the_same_inputs() -> None:
    provider = provider_with_history()
    assessment = fleet_assess(provider=provider, lines=[("RX 580 8GB", 12)])
    options = {o["slug"]: o for o in assessment.report["upgrade_path"]["options"]}
    for slug in ("rtx-4090", "rtx-3090"):
        option = options[slug]
        assert option["payback_months"] is not None, option["financing"]
        app = advance_application_submit(
            provider_user=provider.user, assessment_id=assessment.pk, option_slug=slug, count=12
        )
        assert app.status == ApplicationStatus.OFFERED
        assert app.expected_payoff_months == Decimal(option["payback_months"])
        assert app.principal_micros == Decimal(option["financing"]["principal"]) * MICROS
        # The per-GPU earnings the assessment shows are the ones underwriting projected.
        per_gpu = Decimal(option["monthly_earnings_per_gpu"])
        assert any(f"{per_gpu:,.2f} per GPU" in line for line in app.arithmetic), app.arithmetic


def test_earnings_model_figures() -> None:
    share = provider_share_fraction()
    assert share == 1 - Decimal("0.15") - Decimal("0.02")
    # $0.40/h × 730 h × 50 % × 0.83 = $121.18 (floored to the micro-dollar)
    assert gpu_monthly_share_micros(price_micros=400_000, utilisation=Decimal("0.5"), share_fraction=share) == (
        121_180_000
    )
    assert payoff_months(due_micros=1000, monthly_repayment_micros=300) == Decimal("3.4")  # rounded up
    assert payoff_months(due_micros=1000, monthly_repayment_micros=0) is None


def test_a_farm_is_financed_in_several_applications() -> None:
    provider = provider_with_history(customers=6, per_customer=20_000 * MICROS)
    assessment = fleet_assess(provider=provider, lines=[("RX 580 8GB", 400), ("GTX 1070", 300)])
    option = next(o for o in assessment.report["upgrade_path"]["options"] if o["slug"] == "rtx-3090")
    assert option["replaces_gpus"] == 700
    assert option["financing"]["count"] == 256 and option["financing"]["applications"] == 3
    with pytest.raises(ValidationFailed, match="several applications"):
        advance_application_submit(provider_user=provider.user, assessment_id=assessment.pk, count=700)
    first = advance_application_submit(provider_user=provider.user, assessment_id=assessment.pk, option_slug="rtx-3090")
    assert first.gpu_count == 256  # the default: one application's worth
    second = advance_application_submit(
        provider_user=provider.user, assessment_id=assessment.pk, option_slug="rtx-3090", count=100
    )
    assert first.assessment_id == second.assessment_id == assessment.pk
    assert second.gpu_count == 100


def test_a_new_provider_is_told_why_there_is_no_upgrade_offer() -> None:
    provider = ProviderFactory()
    CustomerFactory()
    report = fleet_assess(provider=provider, lines=[("RX 580 8GB", 8)]).report
    for option in report["upgrade_path"]["options"]:
        assert option["payback_months"] is None
        assert option["financing"]["reasons"][0].startswith("D2")
        assert "open contract demand" in option["financing"]["reasons"][0]
