"""requirements_check_possible: the booking path's feasibility check is one query, and still names what is missing."""

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broker.jobspec import JobSpec
from broker.selectors.requirements import ImpossibleRequirement, requirements_check_possible
from tests.broker.booking_helpers import node

pytestmark = pytest.mark.django_db


def spec(**overrides: Any) -> Any:
    data: dict[str, Any] = {"image": "img", "gpu_count": 1, "duration_hours": "1", "max_price": "3.00"}
    data.update(overrides)
    return JobSpec.from_payload(data, booking=True)


@pytest.fixture
def market() -> None:
    node(name="eu-4090", gpu="rtx-4090", gpu_count=4, region="eu")
    node(name="us-h100", gpu="h100-sxm", gpu_count=8, region="us")
    node(name="unlisted", gpu="h100-sxm", gpu_count=16, region="asia", listed=False)


def test_a_possible_booking_costs_one_query(market: None) -> None:
    s = spec(gpu_models=["rtx-4090", "h100-sxm"], regions=["eu", "us"], gpu_count=8, min_gpu_ram="24")
    with CaptureQueriesContext(connection) as queries:
        requirements_check_possible(spec=s)
    assert len(queries) == 1


def _refusal(**overrides: Any) -> ImpossibleRequirement:
    with pytest.raises(ImpossibleRequirement) as caught:
        requirements_check_possible(spec=spec(**overrides))
    return caught.value


def test_unlisted_models_regions_and_combinations_are_named(market: None) -> None:
    models = _refusal(gpu_models=["rtx-3090"])
    assert "listed models: h100-sxm, rtx-4090" in str(models.message)
    regions = _refusal(regions=["asia"])  # only an unlisted node is there
    assert "No node is listed in regions asia; listed regions: eu, us" in str(regions.message)
    together = _refusal(gpu_models=["rtx-4090"], regions=["us"])  # each exists, not together
    assert "No listed node meets all the hardware requirements together" in str(together.message)
    largest = _refusal(gpu_models=["rtx-4090"], gpu_count=8)
    assert "exceeds the largest node meeting the other requirements (4 GPUs)" in str(largest.message)
    assert _refusal(gpu_count=16).details == {"requirement": "gpu_count", "market_max": "8"}  # unlisted ignored


def test_nothing_listed_is_refused() -> None:
    node(name="unlisted", listed=False)
    assert "No hardware is listed" in str(_refusal().message)
