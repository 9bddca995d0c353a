from django.urls import URLPattern, URLResolver, path

from marketplace.api import nodes, providers

urlpatterns: list[URLPattern | URLResolver] = [
    path("providers/signup/", providers.ProviderSignupApi.as_view(), name="api-provider-signup"),
    path("nodes/", nodes.NodeListCreateApi.as_view(), name="api-nodes"),
    path("nodes/<int:node_id>/", nodes.NodeDetailApi.as_view(), name="api-node-detail"),
    path("nodes/<int:node_id>/token/rotate/", nodes.NodeTokenRotateApi.as_view(), name="api-node-token-rotate"),
    path("nodes/<int:node_id>/token/revoke/", nodes.NodeTokenRevokeApi.as_view(), name="api-node-token-revoke"),
]
