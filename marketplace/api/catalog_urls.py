"""GPU catalog and fleet assessment API routes (under /api/v1/)."""

from django.urls import URLPattern, URLResolver, path

from marketplace.api import catalog

urlpatterns: list[URLPattern | URLResolver] = [
    path("gpu-models/", catalog.GPUModelListView.as_view(), name="api-gpu-model-list"),
    path("gpu-models/<slug:slug>/", catalog.GPUModelDetailView.as_view(), name="api-gpu-model-detail"),
    path("fleet-assessments/", catalog.FleetAssessmentListView.as_view(), name="api-fleet-assessment-list"),
    path(
        "fleet-assessments/<int:assessment_id>/",
        catalog.FleetAssessmentDetailView.as_view(),
        name="api-fleet-assessment-detail",
    ),
]
