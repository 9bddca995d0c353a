from django.urls import path

from broker.api import match

urlpatterns = [
    path("jobs/<int:job_id>/explain/", match.JobExplainView.as_view(), name="api-job-explain"),
    path("match/rounds/", match.MatchRoundsView.as_view(), name="api-match-rounds"),
]
