"""Admin matching console pages under /console/ (namespace "console"), staff only."""

from django.urls import URLPattern, URLResolver, path

from broker.views import console, console_flags, console_jobs, console_nodes

urlpatterns: list[URLPattern | URLResolver] = [
    path("", console.dashboard, name="dashboard"),
    path("queue/rows/", console.queue_rows, name="queue_rows"),
    path("status/", console.status_partial, name="status"),
    path("supply/", console.supply, name="supply"),
    path("supply/table/", console.supply_partial, name="supply_table"),
    path("rounds/", console.rounds, name="rounds"),
    path("rounds/table/", console.rounds_partial, name="rounds_table"),
    path("rounds/<int:round_id>/", console.round_detail, name="round_detail"),
    path("matching/pause/", console.matching_pause_view, name="matching_pause"),
    path("matching/resume/", console.matching_resume_view, name="matching_resume"),
    path("matching/run/", console.round_run, name="round_run"),
    path("jobs/<int:job_id>/", console_jobs.job_detail, name="job_detail"),
    path("jobs/<int:job_id>/assign/", console_jobs.job_assign, name="job_assign"),
    path("flags/", console_flags.flags, name="flags"),
    path("nodes/", console_nodes.nodes, name="nodes"),
    path("nodes/<int:node_id>/", console_nodes.node_detail, name="node_detail"),
    path("nodes/<int:node_id>/verify/", console_nodes.node_verify_view, name="node_verify"),
    path("nodes/<int:node_id>/deverify/", console_nodes.node_deverify_view, name="node_deverify"),
    path("nodes/<int:node_id>/challenge/", console_nodes.node_challenge_view, name="node_challenge"),
    path("nodes/<int:node_id>/cordon/", console_nodes.node_cordon_view, name="node_cordon"),
    path("nodes/<int:node_id>/uncordon/", console_nodes.node_uncordon_view, name="node_uncordon"),
    path("nodes/<int:node_id>/drain/", console_nodes.node_drain_view, name="node_drain"),
]
