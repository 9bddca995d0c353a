from django.urls import include, path

urlpatterns = [
    path("", include("broker.api.agent_urls")),  # /agent/register, /agent/heartbeat, /agent/leases
    path("", include("broker.api.job_urls")),  # customers signup, offers, quotes, jobs
    path("", include("broker.api.match_urls")),  # explain, match rounds (staff)
    path("", include("broker.api.reserved_urls")),  # reserved capacity contracts (customers)
]
