from django.urls import include, path

urlpatterns = [
    path("", include("marketplace.api.catalog_urls")),  # GPU catalog, fleet assessments
    path("", include("marketplace.api.provider_urls")),  # provider signup, nodes
]
