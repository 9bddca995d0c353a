"""Provider price offers under /provider/offers/ (namespace "offers"), the node's own provider only."""

from django.urls import path

from broker.views import provider_offers

app_name = "offers"

urlpatterns = [
    path("", provider_offers.offers, name="list"),
    path("<int:offer_id>/accept/", provider_offers.offer_accept, name="accept"),
    path("<int:offer_id>/decline/", provider_offers.offer_decline, name="decline"),
]
