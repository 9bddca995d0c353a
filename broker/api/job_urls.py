from django.urls import path

from broker.api import customers, jobs, offers, ssh_keys

urlpatterns = [
    path("customers/signup/", customers.CustomerSignupView.as_view(), name="api-customer-signup"),
    path("ssh-keys/", ssh_keys.SshKeyListView.as_view(), name="api-ssh-keys"),
    path("ssh-keys/<int:key_id>/", ssh_keys.SshKeyDetailView.as_view(), name="api-ssh-key-detail"),
    path("offers/", offers.OfferSearchView.as_view(), name="api-offers"),
    path("quotes/", jobs.QuoteView.as_view(), name="api-quotes"),
    path("jobs/", jobs.JobListCreateView.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>/", jobs.JobDetailView.as_view(), name="api-job-detail"),
    path("jobs/<int:job_id>/logs/", jobs.JobLogsView.as_view(), name="api-job-logs"),
    path("jobs/<int:job_id>/cancel/", jobs.JobCancelView.as_view(), name="api-job-cancel"),
]
