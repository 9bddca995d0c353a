"""The node agent's distribution: /agent/install.sh and /agent/<wheel> (public)."""

from django.urls import URLPattern, path

from marketplace.views import agent_dist

urlpatterns: list[URLPattern] = [
    path("agent/install.sh", agent_dist.agent_install_script, name="agent-install-script"),
    path("agent/<str:filename>", agent_dist.agent_wheel_download, name="agent-wheel"),
]
