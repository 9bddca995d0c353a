"""Admin matching console under /console/ (namespace "console"), staff only."""

from broker.views import console_urls

app_name = "console"

urlpatterns = [*console_urls.urlpatterns]
