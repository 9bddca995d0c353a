from django.urls import URLPattern, URLResolver, path

from broker.api import agent, agent_challenge

urlpatterns: list[URLPattern | URLResolver] = [
    path("agent/register", agent.AgentRegisterView.as_view(), name="agent-register"),
    path("agent/heartbeat", agent.AgentHeartbeatView.as_view(), name="agent-heartbeat"),
    path("agent/leases", agent.AgentLeasesView.as_view(), name="agent-leases"),
    path("agent/challenge", agent_challenge.AgentChallengeView.as_view(), name="agent-challenge"),
    path("agent/challenge/answer", agent_challenge.AgentChallengeAnswerView.as_view(), name="agent-challenge-answer"),
    path("agent/challenge/reveal", agent_challenge.AgentChallengeRevealView.as_view(), name="agent-challenge-reveal"),
]
