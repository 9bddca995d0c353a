"""Security hardening: hashed and revocable tokens, CSRF on every form, security headers, rate limits,
account lockout, uploads size-limited and never served back raw."""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import URLPattern, get_resolver
from rest_framework.test import APIClient

from common.models import ApiToken
from common.services import api_token_create
from marketplace.models import Node
from marketplace.services.nodes import node_token_revoke, node_token_rotate
from tests.factories import PASSWORD, NodeFactory, ProviderFactory, UserFactory
from tests.security.test_permission_matrix import EXPECTED, project_routes
from tests.security.world import ROLES, World, world_build

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def sha256(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def database_dump() -> str:
    """Every text value of every table, for 'the raw secret is nowhere' checks."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(str(value) for row in cursor.fetchall() for value in row if value is not None)
    return "\n".join(chunks)


# --- tokens: stored hashed, revocable --------------------------------------------------------------------


def test_api_and_node_tokens_are_stored_only_as_sha256() -> None:
    provider: Any = ProviderFactory()
    token, raw = api_token_create(user=provider.user)
    node: Any = NodeFactory(provider=provider)
    node_raw = node_token_rotate(node=node)
    token.refresh_from_db()
    node.refresh_from_db()
    assert token.key_hash == sha256(raw)
    assert node.token_hash == sha256(node_raw)
    dump = database_dump()
    assert raw not in dump and raw[3:] not in dump, "the raw API token is stored somewhere"
    assert node_raw not in dump and node_raw[4:] not in dump, "the raw node token is stored somewhere"
    assert len(token.prefix) < len(raw) // 2 and len(node.token_prefix) < len(node_raw) // 2


def test_revoked_tokens_stop_working_at_once() -> None:
    provider: Any = ProviderFactory()
    token, raw = api_token_create(user=provider.user)
    node: Any = NodeFactory(provider=provider)
    node_raw = node_token_rotate(node=node)
    api, agent = APIClient(), APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {node_raw}")
    assert api.get("/api/v1/nodes/").status_code == 200
    assert agent.get("/api/v1/agent/leases").status_code == 200

    ApiToken.objects.filter(pk=token.pk).update(revoked_at=node.created_at)
    node_token_revoke(node=Node.objects.get(pk=node.pk))
    assert api.get("/api/v1/nodes/").status_code == 401
    assert agent.get("/api/v1/agent/leases").status_code == 401


def test_a_rotated_node_token_replaces_the_old_one() -> None:
    node: Any = NodeFactory()
    old = node_token_rotate(node=node)
    new = node_token_rotate(node=node)
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {old}").get("/api/v1/agent/leases").status_code == 401
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {new}").get("/api/v1/agent/leases").status_code == 200


# --- CSRF on every form ----------------------------------------------------------------------------------

CSRF_EXEMPT = {"stripe-webhook"}  # Stripe signs its webhooks; there is no browser session to forge


def _admitted_role(name: str) -> str:
    """A role whose POST reaches the view (not refused by login/role checks), else anonymous."""
    row = EXPECTED[(name, "POST")]
    for role in ("anon", "provider_a", "customer_a", "lender", "staff"):
        if row[role] not in ("login", "403", "404", "401"):
            return role
    return "anon"


def page_routes() -> list[str]:
    return sorted(n for n, route in project_routes().items() if not route.startswith("api/") and n not in CSRF_EXEMPT)


@pytest.mark.parametrize("name", page_routes())
def test_post_without_csrf_token_is_refused(name: str) -> None:
    world: World = world_build()
    role = _admitted_role(name)
    client = Client(enforce_csrf_checks=True)
    if role != "anon":
        client.force_login(world.users[role])
    path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(world.kwargs()[m.group(1)]), project_routes()[name])
    response = client.post(path, {"username": "x", "password": "y"})
    assert response.status_code == 403, f"POST {path} as {role} without a CSRF token: {response.status_code}"


def test_api_with_a_session_cookie_also_needs_csrf() -> None:
    world = world_build()
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["customer_a"])
    response = client.post("/api/v1/jobs/", json.dumps({"gpu_count": 1}), content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_every_form_template_carries_the_csrf_token() -> None:
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for form in re.finditer(r"<form\b[^>]*>", text, flags=re.IGNORECASE):
            if re.search(r'method\s*=\s*["\']?post', form.group(0), flags=re.IGNORECASE):
                end = text.find("</form>", form.end())
                if "{% csrf_token %}" not in text[form.end() : end if end != -1 else None]:
                    offenders.append(f"{path.relative_to(ROOT)}: {form.group(0)[:80]}")
    assert not offenders, f"POST forms without {{% csrf_token %}}: {offenders}"


# --- security headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/api/v1/offers/", "/healthz"])
def test_security_headers(client: Client, path: str) -> None:
    response = client.get(path)
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp, "no inline or third-party scripts on our pages"
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


def test_swagger_page_needs_no_exception_to_the_policy(client: Client) -> None:
    """Swagger UI comes from drf-spectacular-sidecar (our static files) and starts from a script URL."""
    csp = client.get("/api/docs/")["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "https:" not in csp and "frame-ancestors 'none'" in csp


def test_templates_have_no_inline_scripts_or_event_handlers() -> None:
    """The CSP allows scripts from 'self' only: an inline <script> or onclick= would silently stop working.
    Use static/js/rigshift.js behaviours (data-confirm, data-print) or htmx attributes instead."""
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r"<script\b[^>]*>", text, flags=re.IGNORECASE):
            tag = match.group(0)
            if "src=" not in tag and "application/json" not in tag:
                offenders.append(f"{path.relative_to(ROOT)}: inline {tag}")
        for match in re.finditer(r"\son[a-z]+\s*=\s*[\"']", text):
            offenders.append(f"{path.relative_to(ROOT)}: event handler {match.group(0).strip()}")
        if re.search(r"\bhx-on[:-]|javascript:", text):
            offenders.append(f"{path.relative_to(ROOT)}: hx-on / javascript: URL")
    assert not offenders, offenders


def test_hsts_and_secure_cookies_in_production() -> None:
    """DJANGO_DEBUG=0: HSTS (a year, subdomains, preload), HTTPS redirect, secure cookies."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "LOG_FORMAT")},
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": "x" * 60,
        "ALLOWED_HOSTS": "testserver",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ALLOW_ASYNC_UNSAFE": "",
    }
    code = (
        "import django, json; django.setup()\n"
        "from django.conf import settings\n"
        "from django.test import Client\n"
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        "c = Client()\n"
        "plain = c.get('/healthz')\n"
        "secure = c.get('/healthz', secure=True)\n"
        "print(json.dumps({'redirect': plain.status_code, 'location': plain.get('Location', ''),"
        " 'hsts': secure.get('Strict-Transport-Security', ''), 'csp': secure.get('Content-Security-Policy', ''),"
        " 'session_secure': settings.SESSION_COOKIE_SECURE, 'csrf_secure': settings.CSRF_COOKIE_SECURE}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["redirect"] == 301 and out["location"].startswith("https://")
    assert out["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert "default-src 'self'" in out["csp"]
    assert out["session_secure"] and out["csrf_secure"]


# --- rate limits -----------------------------------------------------------------------------------------


def test_token_endpoint_is_rate_limited_per_address(settings: Any) -> None:
    settings.RIGSHIFT_RATE_LIMITS = {"login": "3/min"}
    client = APIClient()
    statuses = [
        client.post("/api/v1/auth/token/", {"username": f"nobody{i}", "password": "x"}, format="json").status_code
        for i in range(4)
    ]
    assert statuses == [400, 400, 400, 429]
    refused = client.post("/api/v1/auth/token/", {"username": "n", "password": "x"}, format="json")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["code"] or "Request was throttled" in refused.json()["detail"]
    other = APIClient(REMOTE_ADDR="10.9.9.9")
    assert other.post("/api/v1/auth/token/", {"username": "n", "password": "x"}, format="json").status_code == 400


def test_login_page_is_rate_limited(settings: Any) -> None:
    settings.RIGSHIFT_RATE_LIMITS = {"login": "2/min"}
    client = Client()
    codes = [client.post("/accounts/login/", {"username": f"u{i}", "password": "x"}).status_code for i in range(3)]
    assert codes == [200, 200, 429]
    response = client.post("/accounts/login/", {"username": "u", "password": "x"})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert b"Too many login attempts" in response.content
    assert client.get("/accounts/login/").status_code == 200  # reading the page is not limited


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/api/v1/providers/signup/", True),
        ("/api/v1/customers/signup/", True),
        ("/api/v1/lenders/signup/", True),
        ("/provider/signup/", False),
        ("/app/signup/", False),
        ("/lender/signup/", False),
    ],
)
def test_signups_are_rate_limited(settings: Any, path: str, api: bool) -> None:
    settings.RIGSHIFT_RATE_LIMITS = {"signup": "2/hour"}
    client: Any = APIClient() if api else Client()
    codes = [client.post(path, {}, **({"format": "json"} if api else {})).status_code for _ in range(3)]
    assert codes[:2] != [429, 429] and codes[2] == 429, codes


def test_agent_api_is_limited_per_node_token(settings: Any) -> None:
    settings.RIGSHIFT_RATE_LIMITS = {"agent": "3/min"}
    a: Any = NodeFactory()
    b: Any = NodeFactory()
    client_a = APIClient(HTTP_AUTHORIZATION=f"Bearer {node_token_rotate(node=a)}")
    client_b = APIClient(HTTP_AUTHORIZATION=f"Bearer {node_token_rotate(node=b)}")
    assert [client_a.get("/api/v1/agent/leases").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client_b.get("/api/v1/agent/leases").status_code == 200  # another node, same address: its own budget


def test_default_agent_rate_allows_heartbeats_every_few_seconds() -> None:
    from common.ratelimit import rate_for

    rate = rate_for("agent")
    assert rate is not None
    limit, period = rate
    # a heartbeat every 2 s plus a lease poll every 2 s, with room to spare
    assert limit / period >= 2 * (1 / 2) * 2


# --- account lockout -------------------------------------------------------------------------------------


def test_page_login_locks_after_repeated_failures(settings: Any) -> None:
    settings.RIGSHIFT_LOCKOUT_ATTEMPTS = 5
    user: Any = UserFactory()
    client = Client()
    for _ in range(5):
        assert client.post("/accounts/login/", {"username": user.username, "password": "wrong"}).status_code == 200
    locked = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert 1 <= int(locked["Retry-After"]) <= 900
    assert b"Too many failed logins for this account" in locked.content
    assert b'name="username"' in locked.content  # the login page again, with the message on it
    assert "_auth_user_id" not in client.session  # the right password did not get in during the lock
    # other accounts are unaffected
    other: Any = UserFactory()
    assert client.post("/accounts/login/", {"username": other.username, "password": PASSWORD}).status_code == 302


def test_token_endpoint_shares_the_lockout(settings: Any) -> None:
    settings.RIGSHIFT_LOCKOUT_ATTEMPTS = 3
    user: Any = UserFactory()
    client = APIClient()
    for _ in range(3):
        bad = client.post("/api/v1/auth/token/", {"username": user.username, "password": "nope"}, format="json")
        assert bad.status_code == 400
    locked = client.post("/api/v1/auth/token/", {"username": user.username, "password": PASSWORD}, format="json")
    assert locked.status_code == 429
    assert locked.json()["code"] == "account_locked"
    assert "locked" in locked.json()["detail"] and int(locked["Retry-After"]) >= 1
    # the page login is locked too (same account)
    assert Client().post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 429


def test_lock_expires_after_the_cooling_period(settings: Any) -> None:
    settings.RIGSHIFT_LOCKOUT_ATTEMPTS = 2
    settings.RIGSHIFT_LOCKOUT_COOLDOWN_S = 1
    user: Any = UserFactory()
    client = Client()
    for _ in range(2):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    assert client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 429
    time.sleep(1.2)
    assert client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302


def test_successful_login_resets_the_failure_count(settings: Any) -> None:
    settings.RIGSHIFT_LOCKOUT_ATTEMPTS = 3
    user: Any = UserFactory()
    client = Client()
    for _ in range(2):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    assert client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    client.logout()
    for _ in range(2):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    assert client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302


def test_lockout_is_case_insensitive_on_the_username(settings: Any) -> None:
    settings.RIGSHIFT_LOCKOUT_ATTEMPTS = 2
    user: Any = UserFactory()
    client = Client()
    client.post("/accounts/login/", {"username": user.username.upper(), "password": "wrong"})
    client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    assert client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 429


# --- uploads ---------------------------------------------------------------------------------------------


def test_fleet_upload_over_the_limit_is_refused(settings: Any) -> None:
    settings.RIGSHIFT_MAX_UPLOAD_BYTES = 2_000
    world = world_build()
    client = Client()
    client.force_login(world.users["provider_a"])
    big = SimpleUploadedFile("fleet.csv", b"RTX 4090,1\n" * 400, content_type="text/csv")
    response = client.post("/provider/assessments/new/", {"file": big, "utilisation_pct": "60"})
    assert response.status_code == 413
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {world.tokens['provider_a']}")
    big.seek(0)
    assert api.post("/api/v1/fleet-assessments/", {"file": big}, format="multipart").status_code == 413


def test_uploaded_files_are_never_served_back_raw() -> None:
    world = world_build()
    client = Client()
    client.force_login(world.users["provider_a"])
    payload = b"<script>alert('x')</script>,4\nRTX 4090,2\n"
    upload = SimpleUploadedFile("fleet.html", payload, content_type="text/html")
    response = client.post("/provider/assessments/new/", {"file": upload, "utilisation_pct": "60"})
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"<script>alert" not in page.content  # shown escaped, as text
    assert b"&lt;script&gt;alert" in page.content
    # nothing was written to a served folder, and no route serves uploads
    assert not getattr(django_settings, "MEDIA_URL", "").strip("/")
    served = [p for p in get_resolver().url_patterns if isinstance(p, URLPattern) and "media" in str(p.pattern)]
    assert not served
    assert not any(payload in f.read_bytes() for f in (ROOT / "static").rglob("*") if f.is_file())


def test_roles_list_matches_the_world() -> None:
    assert set(ROLES) == {"anon", "provider_a", "provider_b", "customer_a", "customer_b", "lender", "node_a", "staff"}
