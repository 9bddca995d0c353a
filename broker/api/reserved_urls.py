from django.urls import URLPattern, URLResolver, path

from broker.api.reserved import ReservedContractListCreateView

urlpatterns: list[URLPattern | URLResolver] = [
    path("reserved-contracts/", ReservedContractListCreateView.as_view(), name="api-reserved-contracts"),
]
