from django.urls import URLPattern, URLResolver, path

from broker.api import agent

urlpatterns: list[URLPattern | URLResolver] = [
    path("agent/register", agent.AgentRegisterView.as_view(), name="agent-register"),
    path("agent/heartbeat", agent.AgentHeartbeatView.as_view(), name="agent-heartbeat"),
    path("agent/leases", agent.AgentLeasesView.as_view(), name="agent-leases"),
]
