"""Financing pages, mounted at full paths from billing/views/page_urls.py."""

from django.urls import URLPattern, URLResolver, path

from billing.views import financing, lender

urlpatterns: list[URLPattern | URLResolver] = [
    path("provider/financing/", financing.provider_financing, name="financing-provider"),
    path(
        "provider/financing/applications/<int:application_id>/",
        financing.provider_application,
        name="financing-provider-application",
    ),
    path(
        "provider/financing/advances/<int:advance_id>/", financing.provider_advance, name="financing-provider-advance"
    ),
    path("console/financing/", financing.console_financing, name="financing-console"),
    path("console/financing/advances/<int:advance_id>/", financing.console_advance, name="financing-console-advance"),
    path(
        "console/financing/applications/<int:application_id>/decide/",
        financing.console_application_decide,
        name="financing-console-decide",
    ),
    path(
        "console/financing/advances/<int:advance_id>/action/",
        financing.console_advance_action,
        name="financing-console-action",
    ),
    path("lender/signup/", lender.lender_signup_page, name="lender-signup"),
    path("lender/", lender.lender_portal, name="lender-portal"),
    path("lender/capital/", lender.lender_action, {"action": "capital"}, name="lender-capital"),
    path("lender/preferences/", lender.lender_action, {"action": "preferences"}, name="lender-preferences"),
    path("lender/reinvest/", lender.lender_action, {"action": "reinvest"}, name="lender-reinvest"),
    path("lender/advances/<int:advance_id>/", lender.lender_advance, name="lender-advance"),
]
