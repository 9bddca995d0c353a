"""Financing API (applications, advances, lenders, staff), mounted under /api/v1/ from config/urls.py."""

from django.urls import URLPattern, URLResolver, path

from financing.api import views as f

urlpatterns: list[URLPattern | URLResolver] = [
    path("financing/applications/", f.ApplicationListCreateView.as_view(), name="api-financing-applications"),
    path(
        "financing/applications/<int:application_id>/",
        f.ApplicationDetailView.as_view(),
        name="api-financing-application",
    ),
    path("financing/advances/", f.ProviderAdvanceListView.as_view(), name="api-financing-advances"),
    path("financing/advances/<int:advance_id>/", f.AdvanceDetailView.as_view(), name="api-financing-advance"),
    path("financing/advances/<int:advance_id>/payoff/", f.AdvancePayoffView.as_view(), name="api-financing-payoff"),
    path("financing/staff/applications/", f.StaffApplicationsView.as_view(), name="api-financing-staff-apps"),
    path(
        "financing/staff/applications/<int:application_id>/decide/",
        f.StaffApplicationDecideView.as_view(),
        name="api-financing-staff-decide",
    ),
    path("financing/staff/advances/", f.StaffAdvanceListView.as_view(), name="api-financing-staff-advances"),
    path(
        "financing/staff/advances/<int:advance_id>/action/",
        f.StaffAdvanceActionView.as_view(),
        name="api-financing-staff-action",
    ),
    path("financing/demand/", f.DemandListView.as_view(), name="api-financing-demand"),
    path("financing/demand/<int:demand_id>/", f.DemandDetailView.as_view(), name="api-financing-demand-detail"),
    path("financing/demand/<int:demand_id>/offer/", f.DemandOfferView.as_view(), name="api-financing-demand-offer"),
    path("financing/demand/<int:demand_id>/cancel/", f.DemandCancelView.as_view(), name="api-financing-demand-cancel"),
    path("lender/payouts/", f.LenderPayoutsView.as_view(), name="api-lender-payouts"),
    path("lender/payout-account/", f.LenderPayoutAccountView.as_view(), name="api-lender-payout-account"),
    path("lenders/signup/", f.LenderSignupView.as_view(), name="api-lender-signup"),
    path("lender/preferences/", f.LenderPreferenceView.as_view(), name="api-lender-preferences"),
    path("lender/capital/", f.LenderCapitalView.as_view(), name="api-lender-capital"),
    path("lender/offers/", f.LenderOffersView.as_view(), name="api-lender-offers"),
    path("lender/advances/<int:advance_id>/fund/", f.LenderFundView.as_view(), name="api-lender-fund"),
    path("lender/portfolio/", f.LenderPortfolioView.as_view(), name="api-lender-portfolio"),
]
