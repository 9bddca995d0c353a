"""Customer portal pages under /app/ (namespace "app")."""

from broker.views import app_urls

app_name = "app"

urlpatterns = [*app_urls.urlpatterns]
