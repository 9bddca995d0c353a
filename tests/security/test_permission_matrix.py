"""The permission matrix: every route of the project × every role → the expected status.

Each row is one route (by URL name) and one method, with the status class each role must get, in
the column order of ROLES. URL parameters always name *A's* objects (provider A's node, assessment,
advance…; customer A's job, invoice, API token), so the B columns prove the other tenant can neither
read nor change them. Every role keeps its session for pages and its bearer token for the API; the
node role has only node A's agent token (rsn_…), which opens the agent API and nothing else.

Status classes: "2xx", "3xx" (redirect, not to login), "login" (redirect to the login page), or an
exact code ("400" = authorised but the empty body is invalid, "401", "403", "404", "405", "409", "415").

A new URL pattern that is not in MATRIX fails `test_every_route_is_in_the_matrix`: declare it here.
Django admin routes are checked by `test_admin_routes` (staff-only, behind the admin login).
"""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import UserFactory
from tests.security.world import ROLES, world_build

# fmt: off
MATRIX: list[tuple[str, ...]] = [
    # route name                       method  anon     prov_a   prov_b   cust_a   cust_b   lender   node_a   staff
    ("home",                           "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("home",                           "POST", "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("healthz",                        "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("healthz",                        "POST", "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("healthz-live",                   "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("healthz-live",                   "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("favicon",                        "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("favicon",                        "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("metrics",                        "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("metrics",                        "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("login",                          "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("login",                          "POST", "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("logout",                         "GET",  "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("logout",                         "POST", "3xx",   "3xx",   "3xx",   "3xx",   "3xx",   "3xx",   "3xx",   "3xx"),
    ("schema",                         "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("schema",                         "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-docs",                       "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("api-docs",                       "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-token",                      "GET",  "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-token",                      "POST", "400",   "400",   "400",   "400",   "400",   "400",   "400",   "400"),
    ("api-gpu-model-list",             "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("api-gpu-model-list",             "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-gpu-model-detail",           "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("api-gpu-model-detail",           "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-fleet-assessment-list",      "GET",  "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-fleet-assessment-list",      "POST", "401",   "400",   "400",   "403",   "403",   "403",   "401",   "403"),
    ("api-fleet-assessment-detail",    "GET",  "401",   "2xx",   "404",   "403",   "403",   "403",   "401",   "403"),
    ("api-fleet-assessment-detail",    "POST", "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-provider-signup",            "GET",  "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-provider-signup",            "POST", "400",   "400",   "400",   "400",   "400",   "400",   "400",   "400"),
    ("api-nodes",                      "GET",  "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-nodes",                      "POST", "401",   "400",   "400",   "403",   "403",   "403",   "401",   "403"),
    ("api-node-detail",                "GET",  "401",   "2xx",   "404",   "403",   "403",   "403",   "401",   "403"),
    ("api-node-detail",                "POST", "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-node-token-rotate",          "GET",  "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-node-token-rotate",          "POST", "401",   "2xx",   "404",   "403",   "403",   "403",   "401",   "403"),
    ("api-node-token-revoke",          "GET",  "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-node-token-revoke",          "POST", "401",   "2xx",   "404",   "403",   "403",   "403",   "401",   "403"),
    ("api-wallet",                     "GET",  "401",   "403",   "403",   "2xx",   "2xx",   "403",   "401",   "403"),
    ("api-wallet",                     "POST", "401",   "403",   "403",   "405",   "405",   "403",   "401",   "403"),
    ("api-wallet-topups",              "GET",  "401",   "403",   "403",   "2xx",   "2xx",   "403",   "401",   "403"),
    ("api-wallet-topups",              "POST", "401",   "403",   "403",   "400",   "400",   "403",   "401",   "403"),
    ("api-invoices",                   "GET",  "401",   "403",   "403",   "2xx",   "2xx",   "403",   "401",   "403"),
    ("api-invoices",                   "POST", "401",   "403",   "403",   "2xx",   "2xx",   "403",   "401",   "403"),
    ("api-invoice",                    "GET",  "401",   "403",   "403",   "2xx",   "404",   "403",   "401",   "403"),
    ("api-invoice",                    "POST", "401",   "403",   "403",   "405",   "405",   "403",   "401",   "403"),
    ("api-provider-earnings",          "GET",  "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-provider-earnings",          "POST", "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-provider-payouts",           "GET",  "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-provider-payouts",           "POST", "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-provider-payout-account",    "GET",  "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-provider-payout-account",    "POST", "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-ledger-check",               "GET",  "401",   "403",   "403",   "403",   "403",   "403",   "401",   "2xx"),
    ("api-ledger-check",               "POST", "401",   "403",   "403",   "403",   "403",   "403",   "401",   "405"),
    ("api-financing-applications",     "GET",  "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-applications",     "POST", "401",   "400",   "400",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-application",      "GET",  "401",   "2xx",   "404",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-application",      "POST", "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-advances",         "GET",  "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-advances",         "POST", "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-advance",          "GET",  "401",   "2xx",   "404",   "404",   "404",   "2xx",   "401",   "2xx"),
    ("api-financing-advance",          "POST", "401",   "405",   "405",   "405",   "405",   "405",   "401",   "405"),
    ("api-financing-payoff",           "GET",  "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-payoff",           "POST", "401",   "409",   "404",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-staff-apps",       "GET",  "401",   "403",   "403",   "403",   "403",   "403",   "401",   "2xx"),
    ("api-financing-staff-apps",       "POST", "401",   "403",   "403",   "403",   "403",   "403",   "401",   "405"),
    ("api-financing-staff-decide",     "GET",  "401",   "403",   "403",   "403",   "403",   "403",   "401",   "405"),
    ("api-financing-staff-decide",     "POST", "401",   "403",   "403",   "403",   "403",   "403",   "401",   "400"),
    ("api-financing-staff-advances",   "GET",  "401",   "403",   "403",   "403",   "403",   "403",   "401",   "2xx"),
    ("api-financing-staff-advances",   "POST", "401",   "403",   "403",   "403",   "403",   "403",   "401",   "405"),
    ("api-financing-staff-action",     "GET",  "401",   "403",   "403",   "403",   "403",   "403",   "401",   "405"),
    ("api-financing-staff-action",     "POST", "401",   "403",   "403",   "403",   "403",   "403",   "401",   "400"),
    ("api-financing-demand",           "GET",  "401",   "2xx",   "2xx",   "2xx",   "2xx",   "403",   "401",   "2xx"),
    ("api-financing-demand",           "POST", "401",   "403",   "403",   "400",   "400",   "403",   "401",   "403"),
    ("api-financing-demand-detail",    "GET",  "401",   "2xx",   "2xx",   "2xx",   "404",   "403",   "401",   "2xx"),
    ("api-financing-demand-detail",    "POST", "401",   "405",   "405",   "405",   "405",   "405",   "401",   "405"),
    ("api-financing-demand-offer",     "GET",  "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-demand-offer",     "POST", "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-financing-demand-cancel",    "GET",  "401",   "403",   "403",   "405",   "405",   "403",   "401",   "403"),
    ("api-financing-demand-cancel",    "POST", "401",   "403",   "403",   "2xx",   "404",   "403",   "401",   "403"),
    ("api-lender-payouts",             "GET",  "401",   "403",   "403",   "403",   "403",   "2xx",   "401",   "403"),
    ("api-lender-payouts",             "POST", "401",   "403",   "403",   "403",   "403",   "405",   "401",   "403"),
    ("api-lender-payout-account",      "GET",  "401",   "403",   "403",   "403",   "403",   "405",   "401",   "403"),
    ("api-lender-payout-account",      "POST", "401",   "403",   "403",   "403",   "403",   "2xx",   "401",   "403"),
    ("api-lender-signup",              "GET",  "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-lender-signup",              "POST", "400",   "400",   "400",   "400",   "400",   "400",   "400",   "400"),
    ("api-lender-preferences",         "GET",  "401",   "403",   "403",   "403",   "403",   "2xx",   "401",   "403"),
    ("api-lender-preferences",         "POST", "401",   "403",   "403",   "403",   "403",   "405",   "401",   "403"),
    ("api-lender-capital",             "GET",  "401",   "403",   "403",   "403",   "403",   "2xx",   "401",   "403"),
    ("api-lender-capital",             "POST", "401",   "403",   "403",   "403",   "403",   "400",   "401",   "403"),
    ("api-lender-offers",              "GET",  "401",   "403",   "403",   "403",   "403",   "2xx",   "401",   "403"),
    ("api-lender-offers",              "POST", "401",   "403",   "403",   "403",   "403",   "405",   "401",   "403"),
    ("api-lender-fund",                "GET",  "401",   "403",   "403",   "403",   "403",   "405",   "401",   "403"),
    ("api-lender-fund",                "POST", "401",   "403",   "403",   "403",   "403",   "409",   "401",   "403"),
    ("api-lender-portfolio",           "GET",  "401",   "403",   "403",   "403",   "403",   "2xx",   "401",   "403"),
    ("api-lender-portfolio",           "POST", "401",   "403",   "403",   "403",   "403",   "405",   "401",   "403"),
    ("agent-register",                 "GET",  "401",   "401",   "401",   "401",   "401",   "401",   "405",   "401"),
    ("agent-register",                 "POST", "401",   "401",   "401",   "401",   "401",   "401",   "415",   "401"),
    ("agent-heartbeat",                "GET",  "401",   "401",   "401",   "401",   "401",   "401",   "405",   "401"),
    ("agent-heartbeat",                "POST", "401",   "401",   "401",   "401",   "401",   "401",   "415",   "401"),
    ("agent-leases",                   "GET",  "401",   "401",   "401",   "401",   "401",   "401",   "2xx",   "401"),
    ("agent-leases",                   "POST", "401",   "401",   "401",   "401",   "401",   "401",   "405",   "401"),
    ("agent-challenge",                "GET",  "401",   "401",   "401",   "401",   "401",   "401",   "405",   "401"),
    ("agent-challenge",                "POST", "401",   "401",   "401",   "401",   "401",   "401",   "2xx",   "401"),
    ("agent-challenge-answer",         "GET",  "401",   "401",   "401",   "401",   "401",   "401",   "405",   "401"),
    ("agent-challenge-answer",         "POST", "401",   "401",   "401",   "401",   "401",   "401",   "415",   "401"),
    ("agent-challenge-reveal",         "GET",  "401",   "401",   "401",   "401",   "401",   "401",   "405",   "401"),
    ("agent-challenge-reveal",         "POST", "401",   "401",   "401",   "401",   "401",   "401",   "415",   "401"),
    ("api-customer-signup",            "GET",  "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-customer-signup",            "POST", "400",   "400",   "400",   "400",   "400",   "400",   "400",   "400"),
    ("api-offers",                     "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("api-offers",                     "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("api-quotes",                     "GET",  "401",   "403",   "403",   "405",   "405",   "403",   "401",   "403"),
    ("api-quotes",                     "POST", "401",   "403",   "403",   "400",   "400",   "403",   "401",   "403"),
    ("api-jobs",                       "GET",  "401",   "403",   "403",   "2xx",   "2xx",   "403",   "401",   "403"),
    ("api-jobs",                       "POST", "401",   "403",   "403",   "400",   "400",   "403",   "401",   "403"),
    ("api-job-detail",                 "GET",  "401",   "403",   "403",   "2xx",   "404",   "403",   "401",   "403"),
    ("api-job-detail",                 "POST", "401",   "403",   "403",   "405",   "405",   "403",   "401",   "403"),
    ("api-job-cancel",                 "GET",  "401",   "403",   "403",   "405",   "405",   "403",   "401",   "403"),
    ("api-job-cancel",                 "POST", "401",   "403",   "403",   "2xx",   "404",   "403",   "401",   "403"),
    ("notify:settings",                "GET",  "login", "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "login", "2xx"),
    ("notify:settings",                "POST", "login", "3xx",   "3xx",   "3xx",   "3xx",   "3xx",   "login", "3xx"),
    ("notify:webhook_delete",          "GET",  "login", "405",   "405",   "405",   "405",   "405",   "login", "405"),
    ("notify:webhook_delete",          "POST", "login", "404",   "404",   "404",   "404",   "404",   "login", "404"),
    ("api-ssh-keys",                   "GET",  "401",   "403",   "403",   "2xx",   "2xx",   "403",   "401",   "403"),
    ("api-ssh-keys",                   "POST", "401",   "403",   "403",   "400",   "400",   "403",   "401",   "403"),
    ("api-ssh-key-detail",             "GET",  "401",   "403",   "403",   "405",   "405",   "403",   "401",   "403"),
    ("api-ssh-key-detail",             "POST", "401",   "403",   "403",   "405",   "405",   "403",   "401",   "403"),
    ("api-job-logs",                   "GET",  "401",   "403",   "403",   "2xx",   "404",   "403",   "401",   "2xx"),
    ("api-job-logs",                   "POST", "401",   "403",   "403",   "405",   "405",   "403",   "401",   "405"),
    ("api-job-explain",                "GET",  "401",   "403",   "403",   "2xx",   "404",   "403",   "401",   "2xx"),
    ("api-job-explain",                "POST", "401",   "403",   "403",   "405",   "405",   "403",   "401",   "405"),
    ("api-match-rounds",               "GET",  "401",   "403",   "403",   "403",   "403",   "403",   "401",   "2xx"),
    ("api-match-rounds",               "POST", "401",   "403",   "403",   "403",   "403",   "403",   "401",   "2xx"),
    ("provider:dashboard",             "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:dashboard",             "POST", "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:signup",                "GET",  "2xx",   "3xx",   "3xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("provider:signup",                "POST", "2xx",   "3xx",   "3xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("provider:node-table",            "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-table",            "POST", "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-new",              "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-new",              "POST", "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-detail",           "GET",  "login", "2xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-detail",           "POST", "login", "2xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-install",          "GET",  "login", "2xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-install",          "POST", "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("agent-install-script",           "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("agent-install-script",           "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("agent-wheel",                    "GET",  "404",   "404",   "404",   "404",   "404",   "404",   "404",   "404"),
    ("agent-wheel",                    "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("provider:node-connection",       "GET",  "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-connection",       "POST", "login", "400",   "404",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-token-rotate",     "GET",  "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-token-rotate",     "POST", "login", "2xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-token-revoke",     "GET",  "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("provider:node-token-revoke",     "POST", "login", "3xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("provider:payout-account",        "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:payout-account",        "POST", "login", "3xx",   "3xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:assessment-list",       "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:assessment-list",       "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("provider:assessment-new",        "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("provider:assessment-new",        "POST", "login", "400",   "400",   "403",   "403",   "403",   "login", "403"),
    ("provider:assessment-detail",     "GET",  "login", "2xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("provider:assessment-detail",     "POST", "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("app:dashboard",                  "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:dashboard",                  "POST", "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:signup",                     "GET",  "2xx",   "2xx",   "2xx",   "3xx",   "3xx",   "2xx",   "2xx",   "2xx"),
    ("app:signup",                     "POST", "2xx",   "2xx",   "2xx",   "3xx",   "3xx",   "2xx",   "2xx",   "2xx"),
    ("app:search",                     "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:search",                     "POST", "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:search_results",             "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:search_results",             "POST", "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:jobs",                       "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:jobs",                       "POST", "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:job_new",                    "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:job_new",                    "POST", "login", "403",   "403",   "400",   "400",   "403",   "login", "403"),
    ("app:job_quote",                  "GET",  "login", "403",   "403",   "405",   "405",   "403",   "login", "403"),
    ("app:job_quote",                  "POST", "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:job_detail",                 "GET",  "login", "403",   "403",   "2xx",   "404",   "403",   "login", "403"),
    ("app:job_detail",                 "POST", "login", "403",   "403",   "2xx",   "404",   "403",   "login", "403"),
    ("app:ssh_keys",                   "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:ssh_keys",                   "POST", "login", "403",   "403",   "400",   "400",   "403",   "login", "403"),
    ("app:ssh_key_delete",             "GET",  "login", "403",   "403",   "405",   "405",   "403",   "login", "403"),
    ("app:ssh_key_delete",             "POST", "login", "403",   "403",   "3xx",   "404",   "403",   "login", "403"),
    ("app:job_logs",                   "GET",  "login", "403",   "403",   "2xx",   "404",   "403",   "login", "403"),
    ("app:job_logs",                   "POST", "login", "403",   "403",   "2xx",   "404",   "403",   "login", "403"),
    ("app:job_status",                 "GET",  "login", "403",   "403",   "2xx",   "404",   "403",   "login", "403"),
    ("app:job_status",                 "POST", "login", "403",   "403",   "2xx",   "404",   "403",   "login", "403"),
    ("app:job_cancel",                 "GET",  "login", "403",   "403",   "405",   "405",   "403",   "login", "403"),
    ("app:job_cancel",                 "POST", "login", "403",   "403",   "3xx",   "404",   "403",   "login", "403"),
    ("app:wallet",                     "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:wallet",                     "POST", "login", "403",   "403",   "400",   "400",   "403",   "login", "403"),
    ("app:tokens",                     "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:tokens",                     "POST", "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("app:token_revoke",               "GET",  "login", "403",   "403",   "405",   "405",   "403",   "login", "403"),
    ("app:token_revoke",               "POST", "login", "403",   "403",   "3xx",   "404",   "403",   "login", "403"),
    ("console:dashboard",              "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:dashboard",              "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:queue_rows",             "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:queue_rows",             "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:status",                 "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:status",                 "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:supply",                 "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:supply",                 "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:supply_table",           "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:supply_table",           "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("offers:list",                    "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("offers:list",                    "POST", "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("offers:accept",                  "GET",  "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("offers:accept",                  "POST", "login", "3xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("offers:decline",                 "GET",  "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("offers:decline",                 "POST", "login", "3xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("api-provider-offers",            "GET",  "401",   "2xx",   "2xx",   "403",   "403",   "403",   "401",   "403"),
    ("api-provider-offers",            "POST", "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-offer-accept",               "GET",  "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-offer-accept",               "POST", "401",   "2xx",   "404",   "403",   "403",   "403",   "401",   "403"),
    ("api-offer-decline",              "GET",  "401",   "405",   "405",   "403",   "403",   "403",   "401",   "403"),
    ("api-offer-decline",              "POST", "401",   "2xx",   "404",   "403",   "403",   "403",   "401",   "403"),
    ("console:flags",                  "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:flags",                  "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:rounds",                 "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:rounds",                 "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:rounds_table",           "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:rounds_table",           "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:round_detail",           "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:round_detail",           "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:matching_pause",         "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:matching_pause",         "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:matching_resume",        "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:matching_resume",        "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:round_run",              "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:round_run",              "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:job_detail",             "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:job_detail",             "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:job_assign",             "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:job_assign",             "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:nodes",                  "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:nodes",                  "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:node_detail",            "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("console:node_detail",            "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:node_verify",            "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:node_verify",            "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:node_deverify",          "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:node_deverify",          "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:node_challenge",         "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:node_challenge",         "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:node_cordon",            "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:node_cordon",            "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:node_uncordon",          "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:node_uncordon",          "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("console:node_drain",             "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("console:node_drain",             "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("stripe-webhook",                 "GET",  "405",   "405",   "405",   "405",   "405",   "405",   "405",   "405"),
    ("stripe-webhook",                 "POST", "400",   "400",   "400",   "400",   "400",   "400",   "400",   "400"),
    ("billing-invoices",               "GET",  "login", "403",   "403",   "2xx",   "2xx",   "403",   "login", "403"),
    ("billing-invoices",               "POST", "login", "403",   "403",   "3xx",   "3xx",   "403",   "login", "403"),
    ("billing-invoice",                "GET",  "login", "403",   "403",   "2xx",   "404",   "403",   "login", "403"),
    ("billing-invoice",                "POST", "login", "403",   "403",   "405",   "405",   "403",   "login", "403"),
    ("billing-provider-earnings",      "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("billing-provider-earnings",      "POST", "login", "3xx",   "3xx",   "403",   "403",   "403",   "login", "403"),
    ("financing-provider",             "GET",  "login", "2xx",   "2xx",   "403",   "403",   "403",   "login", "403"),
    ("financing-provider",             "POST", "login", "3xx",   "3xx",   "403",   "403",   "403",   "login", "403"),
    ("financing-provider-application", "GET",  "login", "2xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("financing-provider-application", "POST", "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("financing-provider-advance",     "GET",  "login", "2xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("financing-provider-advance",     "POST", "login", "3xx",   "404",   "403",   "403",   "403",   "login", "403"),
    ("financing-provider-demand-offer", "GET", "login", "405",   "405",   "403",   "403",   "403",   "login", "403"),
    ("financing-provider-demand-offer", "POST", "login", "3xx",  "3xx",   "403",   "403",   "403",   "login", "403"),
    ("financing-console",              "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("financing-console",              "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("financing-console-advance",      "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "2xx"),
    ("financing-console-advance",      "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("financing-console-decide",       "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("financing-console-decide",       "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("financing-console-action",       "GET",  "login", "403",   "403",   "403",   "403",   "403",   "login", "405"),
    ("financing-console-action",       "POST", "login", "403",   "403",   "403",   "403",   "403",   "login", "3xx"),
    ("lender-signup",                  "GET",  "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx",   "2xx"),
    ("lender-signup",                  "POST", "400",   "400",   "400",   "400",   "400",   "400",   "400",   "400"),
    ("lender-portal",                  "GET",  "login", "403",   "403",   "403",   "403",   "2xx",   "login", "403"),
    ("lender-portal",                  "POST", "login", "403",   "403",   "403",   "403",   "405",   "login", "403"),
    ("lender-capital",                 "GET",  "login", "403",   "403",   "403",   "403",   "405",   "login", "403"),
    ("lender-capital",                 "POST", "login", "403",   "403",   "403",   "403",   "3xx",   "login", "403"),
    ("lender-preferences",             "GET",  "login", "403",   "403",   "403",   "403",   "405",   "login", "403"),
    ("lender-preferences",             "POST", "login", "403",   "403",   "403",   "403",   "3xx",   "login", "403"),
    ("lender-reinvest",                "GET",  "login", "403",   "403",   "403",   "403",   "405",   "login", "403"),
    ("lender-reinvest",                "POST", "login", "403",   "403",   "403",   "403",   "3xx",   "login", "403"),
    ("lender-payout-account",          "GET",  "login", "403",   "403",   "403",   "403",   "405",   "login", "403"),
    ("lender-payout-account",          "POST", "login", "403",   "403",   "403",   "403",   "3xx",   "login", "403"),
    ("lender-advance",                 "GET",  "login", "403",   "403",   "403",   "403",   "2xx",   "login", "403"),
    ("lender-advance",                 "POST", "login", "403",   "403",   "403",   "403",   "3xx",   "login", "403"),
    ("api-reserved-contracts",         "GET",  "401",   "403",   "403",   "2xx",   "2xx",   "403",   "401",   "403"),
    ("api-reserved-contracts",         "POST", "401",   "403",   "403",   "400",   "400",   "403",   "401",   "403"),
]
# fmt: on

EXPECTED: dict[tuple[str, str], dict[str, str]] = {
    (row[0], row[1]): dict(zip(ROLES, row[2:], strict=True)) for row in MATRIX
}


def routes(
    patterns: list[Any] | None = None, prefix: str = "", namespace: str | None = None
) -> Iterator[tuple[str, str]]:
    """(route, url name) of every URL pattern, walking includes; names carry their namespace."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            ns = namespace
            if pattern.namespace:
                ns = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from routes(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else (pattern.name or "")
            yield prefix + str(pattern.pattern), name


def project_routes() -> dict[str, str]:
    """URL name -> route, Django admin excluded."""
    return {name: route for route, name in routes() if not route.startswith("admin/")}


def status_class(response: HttpResponse) -> str:
    code = response.status_code
    if 200 <= code < 300:
        return "2xx"
    if code in (301, 302, 303, 307, 308):
        return "login" if "/login/" in response.get("Location", "") else "3xx"
    return str(code)


def test_every_route_is_in_the_matrix() -> None:
    unnamed = [route for route, name in routes() if not name and not route.startswith("admin/")]
    assert not unnamed, f"Routes without a URL name cannot be declared in the matrix: {unnamed}"
    declared = {name for name, _ in EXPECTED}
    missing = sorted(set(project_routes()) - declared)
    assert not missing, (
        f"Routes not declared in tests/security/test_permission_matrix.py MATRIX: {missing}. "
        "Add a GET and a POST row with the status each role must get."
    )
    stale = sorted(declared - set(project_routes()))
    assert not stale, f"MATRIX rows for routes that no longer exist: {stale}"
    for name in declared:
        assert (name, "GET") in EXPECTED and (name, "POST") in EXPECTED, f"{name}: declare both GET and POST"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), sorted(EXPECTED), ids=lambda v: str(v))
def test_permission_matrix(name: str, method: str) -> None:
    route = project_routes().get(name)
    if route is None:
        pytest.fail(f"{name} is in the matrix but not routed")
    world = world_build()
    values = world.kwargs()
    path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)
    got: dict[str, str] = {}
    for role in ROLES:  # the owner's own writes come before the others, staff last
        response = getattr(world.client(role), method.lower())(path)
        got[role] = status_class(response)
        assert response.status_code < 500, f"{method} {path} as {role}: server error {response.status_code}"
    wrong = {
        role: f"expected {EXPECTED[(name, method)][role]}, got {got[role]}"
        for role in ROLES
        if got[role] != EXPECTED[(name, method)][role]
    }
    assert not wrong, f"{method} {path}: {wrong}"


def test_no_route_lets_the_other_tenant_in() -> None:
    """The table itself: wherever A's owner gets 2xx on A's object, B of the same kind never does."""
    for (name, method), expected in EXPECTED.items():
        if "<" not in project_routes().get(name, "") or name.startswith("api-gpu-model"):
            continue
        shared = "demand" in name  # open contract demand is offered to every provider, like the catalog
        for a, b in (("provider_a", "provider_b"), ("customer_a", "customer_b")):
            if shared and a == "provider_a":
                continue
            if expected[a] in ("2xx", "3xx"):
                assert expected[b] in ("403", "404", "405"), f"{method} {name}: {b} must not reach {a}'s object"


@pytest.mark.django_db
def test_admin_routes() -> None:
    """Django admin: anonymous and non-staff roles are sent to the admin login; staff without model
    permissions are refused; a superuser gets every registered model's list."""
    world = world_build()
    superuser = UserFactory(is_staff=True, is_superuser=True)
    su = Client()
    su.force_login(superuser)
    paths = [reverse("admin:index")] + [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist") for model in admin.site._registry
    ]
    for path in paths:
        for role in ("anon", "provider_a", "customer_a", "lender", "node_a"):
            assert status_class(world.client(role).get(path)) == "login", f"{role} {path}"
        assert su.get(path).status_code == 200, path
        if path != reverse("admin:index"):
            assert world.client("staff").get(path).status_code == 403, path
