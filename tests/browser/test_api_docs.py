"""The API docs render offline: Swagger UI from the project's static files, no console errors (issue 17, point 1)."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_api_docs_render_without_network(page) -> None:
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(page.base_url) else None)
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "RigShift API" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-tag")
    assert page.locator(".opblock-tag").count() > 3
    assert not outside, outside
    assert not errors, errors
