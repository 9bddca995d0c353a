"""Navigation (issue 17, points 1 and 2): API docs served from the project, sign-up links beside the login,
role-aware landing, a styled page for another role's portal, styled 404/500 without debug output, favicon."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from common.portals import PORTALS, portal_for_path, role_landing
from tests.factories import PASSWORD, CustomerFactory, LenderFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- 1. API docs ------------------------------------------------------------------------------------------


def test_api_docs_load_swagger_ui_from_our_static_files(client: Client) -> None:
    page = client.get("/api/docs/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "cdn." not in html and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert f"/static/drf_spectacular_sidecar/swagger-ui-dist/{asset}" in html
        assert finders.find(f"drf_spectacular_sidecar/swagger-ui-dist/{asset}"), asset
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content and b"/api/schema/" in script.content
    csp = page["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline' https" not in csp and "cdn" not in csp


def test_sidecar_is_pinned_in_requirements() -> None:
    pins = (ROOT / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("drf-spectacular-sidecar==") for line in pins)


# --- 2. login, landing, other role's portal ---------------------------------------------------------------


def test_login_page_has_sign_up_links_for_every_role(client: Client) -> None:
    html = client.get("/accounts/login/").content.decode()
    for portal in PORTALS:
        if portal.signup_url:
            assert f'href="{portal.signup_url}"' in html
    nudged = client.get("/accounts/login/?next=/provider/").content.decode()
    assert "needs a provider account" in nudged and 'href="/provider/signup/" class="button"' in nudged


@pytest.mark.parametrize(
    ("make", "landing"),
    [
        (lambda: ProviderFactory().user, "/provider/"),
        (lambda: CustomerFactory().user, "/app/"),
        (lambda: LenderFactory().user, "/lender/"),
        (lambda: UserFactory(is_staff=True), "/console/"),
        (lambda: UserFactory(), "/"),
    ],
)
def test_login_lands_on_the_users_own_portal(client: Client, make, landing: str) -> None:
    user = make()
    assert role_landing(user) == landing
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == landing
    explicit = Client().post("/accounts/login/", {"username": user.username, "password": PASSWORD, "next": "/app/"})
    assert explicit["Location"] == "/app/"  # an explicit next still wins


def test_portal_for_path_picks_the_portal() -> None:
    assert portal_for_path("/provider/earnings/").key == "provider"
    assert portal_for_path("/app/invoices/3/").key == "customer"
    assert portal_for_path("/console/nodes/").key == "staff"
    assert portal_for_path("/lender/").key == "lender"
    assert portal_for_path("/healthz") is None


def test_customer_opening_provider_portal_gets_a_styled_explanation() -> None:
    customer = CustomerFactory().user
    response = _logged_in(customer).get("/provider/")
    html = response.content.decode()
    assert response.status_code == 403
    assert '<link rel="stylesheet"' in html and 'id="error-403"' in html
    assert "The provider portal is for provider accounts" in html
    assert 'href="/app/"' in html  # their own portal
    assert 'href="/provider/signup/"' in html  # how to become a provider


def test_provider_opening_the_console_is_told_staff_accounts_are_made_by_an_administrator() -> None:
    html = _logged_in(ProviderFactory().user).get("/console/").content.decode()
    assert "matching console is for staff accounts" in html and "made by an administrator" in html
    assert 'href="/provider/"' in html


def test_api_403_and_404_stay_json() -> None:
    client = _logged_in(CustomerFactory().user)
    assert client.get("/api/v1/nowhere/").json()["code"] == "not_found"


def test_missing_page_is_a_styled_404_without_debug_output(client: Client) -> None:
    response = _logged_in(CustomerFactory().user).get("/app/jobs/999999/")
    html = response.content.decode()
    assert response.status_code == 404 and 'id="error-404"' in html
    assert "URLconf" not in html and "Traceback" not in html and "urlpatterns" not in html.lower()
    unknown = client.get("/no/such/page/")
    assert unknown.status_code == 404 and 'id="error-404"' in unknown.content.decode()


def test_server_error_page_is_static_and_styled() -> None:
    from common.views import server_error

    request = Client().get("/").wsgi_request
    response = server_error(request)
    assert response.status_code == 500
    assert b"Something went wrong" in response.content and b"rigshift.css" in response.content


def test_make_run_settings_show_no_debug_pages(tmp_path: Path) -> None:
    """DJANGO_DEBUG=1 (what `make run` uses) keeps development mode but not Django's technical pages."""
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "print(settings.DEV_MODE, settings.DEBUG, settings.WHITENOISE_USE_FINDERS)\n"
    )

    def run(**extra: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
        env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "RIGSHIFT_VAR_DIR": str(tmp_path), **extra})
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert run(DJANGO_DEBUG="1") == "True False True"
    assert run(DJANGO_DEBUG="1", DJANGO_DEBUG_PAGES="1") == "True True True"


def test_favicon_is_served_and_linked(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content).startswith(b"\x00\x00\x01\x00")  # an ICO header
    assert 'rel="icon" href="/static/favicon.ico"' in client.get("/").content.decode()


def test_earnings_page_is_linked_from_the_provider_portal() -> None:
    html = _logged_in(ProviderFactory().user).get("/provider/").content.decode()
    assert 'href="/provider/earnings/"' in html and 'href="/provider/assessments/"' in html


def test_home_links_every_role_and_the_users_own_portal() -> None:
    html = Client().get("/").content.decode()
    for href in ("/provider/", "/app/", "/lender/", "/api/docs/", "/accounts/login/"):
        assert f'href="{href}"' in html
    own = _logged_in(LenderFactory().user).get("/").content.decode()
    assert 'id="own-portals"' in own and "Lender portal" in own
