from django.urls import path

from common import api_views

urlpatterns = [
    path("auth/token/", api_views.TokenObtainView.as_view(), name="api-token"),
]
