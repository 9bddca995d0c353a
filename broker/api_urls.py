from django.urls import include, path

from broker.api import price_offers as offers

urlpatterns = [
    path("", include("broker.api.agent_urls")),  # /agent/register, /agent/heartbeat, /agent/leases
    path("", include("broker.api.job_urls")),  # customers signup, offers, quotes, jobs
    path("", include("broker.api.match_urls")),  # explain, match rounds (staff)
    path("", include("broker.api.reserved_urls")),  # reserved capacity contracts (customers)
    path("provider/offers/", offers.PriceOfferListView.as_view(), name="api-provider-offers"),
    path("provider/offers/<int:offer_id>/accept/", offers.PriceOfferAcceptView.as_view(), name="api-offer-accept"),
    path("provider/offers/<int:offer_id>/decline/", offers.PriceOfferDeclineView.as_view(), name="api-offer-decline"),
]
