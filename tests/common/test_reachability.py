"""Every page is reachable by links (issue 17, point 2): starting at `/`, each role follows the links on the pages it
sees (GET only, this site only) and must reach every page route the permission matrix lets it open."""

import re
from collections import deque

import pytest
from django.test import Client
from django.urls import Resolver404, resolve

from tests.security.test_permission_matrix import EXPECTED, project_routes
from tests.security.world import world_build

pytestmark = pytest.mark.django_db

HREF = re.compile(r'href="(/[^"#?]*)(?:\?[^"#]*)?(?:#[^"]*)?"')
# Routes that are not pages a person navigates to: machine endpoints, htmx partials, the auth forms themselves.
NOT_PAGES = re.compile(
    r"^(api/|admin/|metrics|healthz|favicon|webhooks/|accounts/|agent/)|/(table|rows|status|quote|results|logs)/$"
)
LIMIT = 400


def _crawl(client: Client) -> set[str]:
    """URL names of every page reached from / by following links."""
    seen: set[str] = set()
    names: set[str] = set()
    queue = deque(["/"])
    while queue and len(seen) < LIMIT:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        try:
            match = resolve(path)
        except Resolver404:
            continue
        if match.view_name.startswith("admin:") or path.startswith(("/api/", "/static/")):
            continue
        response = client.get(path)
        if response.status_code not in (200, 403) or "text/html" not in response.get("Content-Type", ""):
            continue
        if response.status_code == 200:
            names.add(match.view_name)
        queue.extend(link for link in HREF.findall(response.content.decode()) if link not in seen)
    return names


@pytest.mark.parametrize("role", ["provider_a", "customer_a", "lender", "staff"])
def test_every_page_a_role_may_open_is_linked_from_home(role: str) -> None:
    world = world_build()
    reached = _crawl(world.client(role))
    routes = project_routes()
    expected = {
        name
        for (name, method), statuses in EXPECTED.items()
        if method == "GET"
        and statuses[role] == "2xx"
        and not NOT_PAGES.search(routes.get(name, ""))
        and not name.startswith("api-")
    }
    missing = sorted(name for name in expected if name not in reached and name.split(":")[-1] not in reached)
    assert not missing, f"{role} cannot reach by links: {missing}"
