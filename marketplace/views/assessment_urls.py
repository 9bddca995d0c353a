"""Fleet assessment pages under /provider/assessments/ (namespace "provider")."""

from django.urls import URLPattern, URLResolver, path

from marketplace.views import assessment

urlpatterns: list[URLPattern | URLResolver] = [
    path("assessments/", assessment.assessment_list, name="assessment-list"),
    path("assessments/new/", assessment.assessment_new, name="assessment-new"),
    path("assessments/<int:assessment_id>/", assessment.assessment_detail, name="assessment-detail"),
]
