from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from common import views as common_views
from common import views_metrics
from financing.urls import moved_from_billing_urls

api_v1 = [
    path("", include("common.api_urls")),
    path("", include("marketplace.api_urls")),
    path("", include("billing.api_urls")),
    path("", include("financing.api.urls")),
    path("", include("broker.api_urls")),
]

urlpatterns = [
    path("", common_views.home, name="home"),
    path("healthz", common_views.healthz, name="healthz"),
    path("healthz/live", common_views.healthz_live, name="healthz-live"),
    path("metrics", views_metrics.metrics, name="metrics"),
    path("admin/billing/", include(moved_from_billing_urls())),  # financing's models left billing
    path("admin/", admin.site.urls),
    path("favicon.ico", common_views.favicon, name="favicon"),
    path("accounts/login/", common_views.RoleLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Split view: the page loads its start-up script from a URL, so the Content-Security-Policy needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include(api_v1)),
    path("notify/", include("notify.urls")),
    path("provider/offers/", include("broker.urls_offers")),  # price offers need the provider's consent
    path("provider/", include("marketplace.urls")),
    path("", include("marketplace.agent_urls")),
    path("app/", include("broker.urls_app")),
    path("console/", include("broker.urls_console")),
    path("", include("billing.urls")),
    path("", include("financing.urls")),
]

handler403 = "common.views.permission_denied"
handler404 = "common.views.page_not_found"
handler500 = "common.views.server_error"
