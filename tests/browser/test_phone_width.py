"""Every page fits a 390 px phone screen (issue 17, point 5): each GET page of the permission matrix that some role
may open is loaded in Chromium as that role; nothing may be wider than the screen (wide tables scroll inside
their box) and no console error may appear."""

import re
from typing import Any

import pytest

from tests.browser.journeys import _OVERFLOW_JS, PHONE
from tests.security.test_permission_matrix import EXPECTED, project_routes
from tests.security.world import world_build

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGE_ROLES = ("provider_a", "customer_a", "lender", "staff", "anon")
# Not pages a person reads: machine endpoints, partials polled by htmx, downloads.
NOT_PAGES = re.compile(r"^(api/|admin/|metrics|healthz|favicon|webhooks/)|/(table|rows|status|quote|results)/$")


def _pages(world: Any) -> list[tuple[str, str]]:
    values = world.kwargs()
    pages = []
    for (name, method), expected in sorted(EXPECTED.items()):
        route = project_routes().get(name, "")
        if method != "GET" or NOT_PAGES.search(route):
            continue
        role = next((r for r in PAGE_ROLES if expected[r] == "2xx"), None)
        if role is not None:
            pages.append((role, "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)))
    return pages


def test_every_page_fits_a_phone(browser: Any, live_server: Any) -> None:
    world = world_build()
    pages = _pages(world)
    assert len(pages) > 25
    problems: list[str] = []
    contexts: dict[str, Any] = {}
    for role, path in pages:
        if role not in contexts:
            context = browser.new_context(base_url=live_server.url, viewport=PHONE)
            context.set_default_timeout(10_000)
            client = world.client(role)
            if "sessionid" in client.cookies:
                cookie = client.cookies["sessionid"].value
                context.add_cookies([{"name": "sessionid", "value": cookie, "url": live_server.url}])
            contexts[role] = context
        page = contexts[role].new_page()
        errors: list[str] = []
        page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        response = page.goto(path)
        page.wait_for_load_state("networkidle")
        layout = page.evaluate(_OVERFLOW_JS)
        if response is None or response.status >= 400:
            problems.append(f"{role} {path}: status {response.status if response else '?'}")
        if layout["scrollWidth"] > PHONE["width"]:
            problems.append(f"{role} {path}: {layout['scrollWidth']} px wide: {layout['offenders']}")
        if errors:
            problems.append(f"{role} {path}: console errors {errors}")
        page.close()
    for context in contexts.values():
        context.close()
    assert not problems, "\n".join(problems)
