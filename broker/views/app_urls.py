"""Customer portal pages under /app/ (namespace "app")."""

from django.urls import URLPattern, URLResolver, path

from broker.views import app, app_jobs, app_keys, app_search

urlpatterns: list[URLPattern | URLResolver] = [
    path("", app.dashboard, name="dashboard"),
    path("signup/", app.signup, name="signup"),
    path("search/", app_search.search, name="search"),
    path("search/results/", app_search.search_results, name="search_results"),
    path("jobs/", app_jobs.jobs, name="jobs"),
    path("jobs/new/", app_jobs.job_new, name="job_new"),
    path("jobs/quote/", app_jobs.job_quote_partial, name="job_quote"),
    path("jobs/<int:job_id>/", app_jobs.job_detail, name="job_detail"),
    path("jobs/<int:job_id>/status/", app_jobs.job_status_partial, name="job_status"),
    path("jobs/<int:job_id>/logs/", app_jobs.job_logs_partial, name="job_logs"),
    path("jobs/<int:job_id>/cancel/", app_jobs.job_cancel_view, name="job_cancel"),
    path("wallet/", app.wallet, name="wallet"),
    path("keys/", app_keys.ssh_keys, name="ssh_keys"),
    path("keys/<int:key_id>/delete/", app_keys.ssh_key_delete_view, name="ssh_key_delete"),
    path("tokens/", app.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", app.token_revoke, name="token_revoke"),
]
