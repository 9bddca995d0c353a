"""Financing pages (provider, lender portal, staff console), mounted at the site root from config/urls.py, and
the redirects from the admin pages financing's models had under billing."""

from django.apps import apps
from django.urls import URLPattern, URLResolver, path, re_path
from django.views.generic import RedirectView

from financing.views import advances, lenders

urlpatterns: list[URLPattern | URLResolver] = [
    path("provider/financing/", advances.provider_financing, name="financing-provider"),
    path(
        "provider/financing/applications/<int:application_id>/",
        advances.provider_application,
        name="financing-provider-application",
    ),
    path("provider/financing/advances/<int:advance_id>/", advances.provider_advance, name="financing-provider-advance"),
    path(
        "provider/financing/demand/<int:demand_id>/offer/",
        advances.provider_demand_offer,
        name="financing-provider-demand-offer",
    ),
    path("console/financing/", advances.console_financing, name="financing-console"),
    path("console/financing/advances/<int:advance_id>/", advances.console_advance, name="financing-console-advance"),
    path(
        "console/financing/applications/<int:application_id>/decide/",
        advances.console_application_decide,
        name="financing-console-decide",
    ),
    path(
        "console/financing/advances/<int:advance_id>/action/",
        advances.console_advance_action,
        name="financing-console-action",
    ),
    path("lender/signup/", lenders.lender_signup_page, name="lender-signup"),
    path("lender/", lenders.lender_portal, name="lender-portal"),
    path("lender/capital/", lenders.lender_action, {"action": "capital"}, name="lender-capital"),
    path("lender/preferences/", lenders.lender_action, {"action": "preferences"}, name="lender-preferences"),
    path("lender/reinvest/", lenders.lender_action, {"action": "reinvest"}, name="lender-reinvest"),
    path("lender/payout-account/", lenders.lender_payout_account, name="lender-payout-account"),
    path("lender/advances/<int:advance_id>/", lenders.lender_advance, name="lender-advance"),
]


def moved_from_billing_urls() -> list[URLPattern]:
    """/admin/billing/<financing model>/… → /admin/financing/<model>/… (the models left billing; bookmarks stay
    good). Mounted before the admin in config/urls.py; billing's own models do not match and fall through."""
    names = "|".join(model._meta.model_name or "" for model in apps.get_app_config("financing").get_models())
    return [
        re_path(
            rf"^(?P<model>{names})/(?P<rest>.*)$",
            RedirectView.as_view(url="/admin/financing/%(model)s/%(rest)s", permanent=True, query_string=True),
        )
    ]
