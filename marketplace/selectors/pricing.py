"""Current marketplace prices per GPU model: what a provider's GPUs would earn today."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from marketplace.models import GPUModel, Node


@dataclass(frozen=True)
class ModelPrice:
    micros_per_gpu_hour: int
    source: str  # "market" (median of listed nodes), "reference" (catalog reference price) or "none"
    listings: int


def _median(values: list[int]) -> int:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def gpu_model_prices(*, gpu_models: Iterable[GPUModel]) -> dict[int, ModelPrice]:
    """Per model id: the median on-demand price of listed nodes of that model, else its catalog reference price.

    The median is taken over listed nodes with a positive price (one value per node), in micro-USD per GPU-hour.
    """
    models = {model.pk: model for model in gpu_models}
    asks: dict[int, list[int]] = defaultdict(list)
    rows = Node.objects.filter(gpu_model_id__in=list(models), listed=True, price_micros__gt=0).values_list(
        "gpu_model_id", "price_micros"
    )
    for model_id, price in rows:
        asks[model_id].append(price)
    prices: dict[int, ModelPrice] = {}
    for model_id, model in models.items():
        if asks.get(model_id):
            prices[model_id] = ModelPrice(_median(asks[model_id]), "market", len(asks[model_id]))
        elif model.reference_price_micros > 0:
            prices[model_id] = ModelPrice(model.reference_price_micros, "reference", 0)
        else:
            prices[model_id] = ModelPrice(0, "none", 0)
    return prices
