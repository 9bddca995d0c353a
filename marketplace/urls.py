"""Provider portal pages under /provider/ (namespace "provider")."""

from marketplace.views import assessment_urls, portal_urls

app_name = "provider"

urlpatterns = [*portal_urls.urlpatterns, *assessment_urls.urlpatterns]
