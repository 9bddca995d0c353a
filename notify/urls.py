from django.urls import URLPattern, path

from notify.views import pages

app_name = "notify"

urlpatterns: list[URLPattern] = [
    path("", pages.notify_settings, name="settings"),
    path("webhooks/<int:endpoint_id>/delete/", pages.webhook_delete, name="webhook_delete"),
]
