from django.urls import path

from broker.api import customers, jobs, offers

urlpatterns = [
    path("customers/signup/", customers.CustomerSignupView.as_view(), name="api-customer-signup"),
    path("offers/", offers.OfferSearchView.as_view(), name="api-offers"),
    path("quotes/", jobs.QuoteView.as_view(), name="api-quotes"),
    path("jobs/", jobs.JobListCreateView.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>/", jobs.JobDetailView.as_view(), name="api-job-detail"),
    path("jobs/<int:job_id>/logs/", jobs.JobLogsView.as_view(), name="api-job-logs"),
    path("jobs/<int:job_id>/cancel/", jobs.JobCancelView.as_view(), name="api-job-cancel"),
]
