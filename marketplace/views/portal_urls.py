from django.urls import URLPattern, URLResolver, path

from marketplace.views import agent_dist, portal

urlpatterns: list[URLPattern | URLResolver] = [
    path("", portal.dashboard, name="dashboard"),
    path("signup/", portal.signup, name="signup"),
    path("nodes/table/", portal.node_table, name="node-table"),
    path("nodes/new/", portal.node_new, name="node-new"),
    path("nodes/<int:node_id>/", portal.node_detail, name="node-detail"),
    path("nodes/<int:node_id>/install/", agent_dist.node_install, name="node-install"),
    path("nodes/<int:node_id>/connection/", portal.node_connection, name="node-connection"),
    path("nodes/<int:node_id>/token/rotate/", portal.node_token_rotate_view, name="node-token-rotate"),
    path("nodes/<int:node_id>/token/revoke/", portal.node_token_revoke_view, name="node-token-revoke"),
    path("payout-account/", portal.payout_account, name="payout-account"),
]
