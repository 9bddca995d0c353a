"""Reads of price offers: a provider's own (issue 12 point 5)."""

from broker.models import PriceOffer, PriceOfferState
from marketplace.models import Provider


def price_offers_for_provider(*, provider: Provider) -> list[PriceOffer]:
    """The provider's offers, pending first, newest first."""
    offers = PriceOffer.objects.filter(node__provider=provider).select_related("job", "node", "node__gpu_model")
    return sorted(offers, key=lambda o: (o.state != PriceOfferState.PENDING, -o.created_at.timestamp(), -o.pk))
