"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis), as each role.

Every operation in `/api/schema/` is called with generated inputs (valid and invalid) by the role
that may use it — picked from the permission matrix (tests/security/test_permission_matrix.py): the
owner provider, customer, lender, staff, or node A's agent token for the agent API; public operations
anonymously. Checks: no 5xx (`not_a_server_error`) and every documented response matches its schema
(`response_schema_conformance`). Bounded: FUZZ_MAX_EXAMPLES (default 25) examples per operation;
FUZZ_RANDOM=1 draws new examples instead of replaying the fixed ones.
"""

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from config.wsgi import application
from tests.security.test_permission_matrix import EXPECTED
from tests.security.world import World, world_build

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
# CI replays the same examples (no flaky reds); FUZZ_RANDOM=1 explores new ones locally.
DERANDOMIZE = os.environ.get("FUZZ_RANDOM", "") != "1"
# Who fuzzes an operation: the first of these roles the matrix lets in (2xx, or a 4xx about the input).
ROLE_PREFERENCE = ("provider_a", "customer_a", "lender", "staff", "node_a")
ADMITTED = {"2xx", "3xx", "400", "404", "409", "415"}

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


def role_for(path: str, method: str) -> str:
    """The role that may call `method path` (schema path with {params}), from the permission matrix."""
    concrete = re.sub(r"\{[^}]+\}", "1", path)
    try:
        match = resolve(concrete)
    except Resolver404:
        pytest.fail(f"{method} {path} is in the schema but not routed")
    row = EXPECTED.get((match.view_name, "GET" if method.upper() in ("GET", "HEAD") else "POST"))
    assert row is not None, f"{match.view_name} is not in the permission matrix"
    if all(row[role] == row["anon"] for role in row) and row["anon"] in ADMITTED:
        return "anon"
    for role in ROLE_PREFERENCE:
        if row[role] in ADMITTED:
            return role
    return "anon"


@pytest.fixture
def world(db: Any, settings: Any) -> Iterator[World]:
    # Fuzzing sends hundreds of login/signup attempts from one address: no rate limits here.
    settings.RIGSHIFT_RATE_LIMITS = {}
    settings.RIGSHIFT_LOCKOUT_ATTEMPTS = 10**9
    # schemathesis calls the real WSGI handler, whose request signals would close the test's database
    # connection (and its transaction) after each response; Django's own test client unhooks them too.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield world_build()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
    database=None,
)
def test_api_fuzz(case: Any, world: World) -> None:
    role = role_for(case.path, case.method)
    headers = {"Authorization": f"Bearer {world.tokens[role]}"} if role != "anon" else {}
    case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])
