"""Billing pages (invoices, provider earnings) and the Stripe webhook, mounted at the site root."""

from billing.views import page_urls

urlpatterns = [*page_urls.urlpatterns]
