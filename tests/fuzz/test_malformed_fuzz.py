"""Issue 12, point 6: Hypothesis fuzzes every API operation of the OpenAPI schema with the classes of input that
used to be 500s (deep nesting, huge exponents, non-finite numbers, far dates, huge integers), as the role that
may call it, and the server log of the run must show no traceback.

- Bodies: for each POST/PUT/PATCH operation with a JSON body, the schema's own property names, each given a
  value drawn from `NASTY` (raw JSON text, so `NaN`, `Infinity` and `1e999999999` go out as JSON tokens too),
  or the whole body replaced by deep nesting.
- Queries: for each GET operation with query parameters, each parameter given a nasty value as text.
- Every answer must be below 500; the log records of the run (the `django.request` "Internal Server Error"
  with its traceback, or any record carrying exc_info) are written to `var/fuzz-server.log` and must be none.

Bounded: FUZZ_MALFORMED_EXAMPLES (default 12) examples per operation; derandomized (the same run every time)
unless FUZZ_RANDOM=1.
"""

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.wsgi import application
from tests.fuzz.test_api_fuzz import role_for
from tests.security.world import World, world_build

MAX_EXAMPLES = int(os.environ.get("FUZZ_MALFORMED_EXAMPLES", "12"))
DERANDOMIZE = os.environ.get("FUZZ_RANDOM", "") != "1"
LOG_PATH = Path(__file__).resolve().parents[2] / "var" / "fuzz-server.log"

RAW = schemathesis.openapi.from_wsgi("/api/schema/", application).raw_schema

# JSON text fragments: each is one value.
NASTY_NUMBERS = [
    '"1e999999999"',
    '"-1e999999999"',
    '"1e-999999999"',
    '"NaN"',
    '"Infinity"',
    '"-Infinity"',
    '"inf"',
    '"sNaN"',
    "1e999999999",
    "-1e999999999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" + "0" * 5000,
    '"' + "9" * 400 + '"',
    "1e308",
    "-0",
    "0",
    "-1",
    "4294967296",
]
FAR_DATES = [
    '"9999-12-31T23:59:59Z"',
    '"9999-12-31T23:59:59+14:00"',
    '"0001-01-01T00:00:00Z"',
    '"2999-01-01T00:00:00Z"',
    '"275760-09-13T00:00:00Z"',
    '"1969-12-31T23:59:59Z"',
]
NASTY = [*NASTY_NUMBERS, *FAR_DATES, "[" * 40 + "]" * 40, '{"a": ' * 40 + "1" + "}" * 40, "null", "true", '""']
DEEP_BODIES = ["[" * 50_000, "[" * 33 + "]" * 33, '{"a":' * 1000 + "1" + "}" * 1000]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return RAW["components"]["schemas"][name]
    return node


def _body_operations() -> list[tuple[str, str, list[str]]]:
    out = []
    for path, item in RAW["paths"].items():
        for method, op in item.items():
            if method not in ("post", "put", "patch"):
                continue
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            props = sorted(_resolve(schema).get("properties", {})) if schema else []
            out.append((path, method, props))
    return out


def _query_operations() -> list[tuple[str, list[str]]]:
    out = []
    for path, item in RAW["paths"].items():
        op = item.get("get")
        if op:
            names = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
            if names:
                out.append((path, names))
    return out


def _concrete(path: str, world: World) -> str:
    values = world.kwargs()
    return re.sub(r"\{([^}]+)\}", lambda m: str(values.get(m.group(1), 1)), path)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def world(db: Any, settings: Any) -> Iterator[World]:
    settings.RIGSHIFT_RATE_LIMITS = {}
    settings.RIGSHIFT_LOCKOUT_ATTEMPTS = 10**9
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield world_build()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def server_log() -> Iterator[_Collect]:
    """The run's server log: every ERROR record (with its traceback) goes to var/fuzz-server.log."""
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        LOG_PATH.parent.mkdir(exist_ok=True)
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        with LOG_PATH.open("a") as fh:
            for record in handler.records:
                fh.write(formatter.format(record) + "\n")


def _client(world: World, path: str, method: str) -> Client:
    role = role_for(path, method)
    client = Client(raise_request_exception=False)
    if role != "anon":
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {world.tokens[role]}"
    return client


def _no_traceback(log: _Collect, context: str) -> None:
    bad = [r for r in log.records if r.exc_info or "Internal Server Error" in r.getMessage()]
    assert not bad, f"{context}: the server logged {bad[0].getMessage()!r}"


FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
    database=None,
)


@pytest.mark.parametrize(("path", "method", "props"), _body_operations(), ids=lambda v: str(v)[:60])
@FUZZ
@given(data=st.data())
def test_nasty_bodies_are_never_a_500(
    world: World, server_log: _Collect, path: str, method: str, props: list[str], data: Any
) -> None:
    keys = props or ["amount", "value"]
    if data.draw(st.integers(0, 5), label="deep") == 0:
        body = data.draw(st.sampled_from(DEEP_BODIES), label="body")
    else:
        chosen = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=len(keys), unique=True), label="keys")
        values = [data.draw(st.sampled_from(NASTY), label=k) for k in chosen]
        body = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in zip(chosen, values, strict=True)) + "}"
    url = _concrete(path, world)
    response = getattr(_client(world, path, method), method)(url, body, content_type="application/json")
    assert response.status_code < 500, (method, url, body[:200], response.content[:300])
    _no_traceback(server_log, f"{method} {url} {body[:120]}")


@pytest.mark.parametrize(("path", "names"), _query_operations(), ids=lambda v: str(v)[:60])
@FUZZ
@given(data=st.data())
def test_nasty_query_values_are_never_a_500(
    world: World, server_log: _Collect, path: str, names: list[str], data: Any
) -> None:
    texts = [v.strip('"') for v in NASTY_NUMBERS + FAR_DATES]
    query: dict[str, str] = {}
    for name in data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True), label="params"):
        value = data.draw(st.sampled_from(texts), label=name)
        if name == "q":
            field = data.draw(st.sampled_from(["price", "gpu_ram", "num_gpus", "reliability", "min_bid"]))
            op = data.draw(st.sampled_from([">=", "<=", "==", "!=", "<", ">"]))
            value = f"{field}{op}{value}"
        query[name] = value
    url = _concrete(path, world)
    response = _client(world, path, "get").get(url, query)
    assert response.status_code < 500, (url, query, response.content[:300])
    _no_traceback(server_log, f"GET {url} {query}")


@pytest.mark.parametrize(("path", "names"), _query_operations(), ids=lambda v: str(v)[:60])
def test_each_nasty_query_value_alone_is_never_a_500(
    world: World, server_log: _Collect, path: str, names: list[str]
) -> None:
    """Every parameter × every nasty value, exhaustively (Hypothesis above mixes them)."""
    url = _concrete(path, world)
    client = _client(world, path, "get")
    for name in names:
        for raw in NASTY_NUMBERS + FAR_DATES:
            value = raw.strip('"')
            for sent in [f"price>={value}", f"gpu_ram<{value}", f"num_gpus=={value}"] if name == "q" else [value]:
                response = client.get(url, {name: sent})
                assert response.status_code < 500, (url, name, sent, response.content[:300])
    _no_traceback(server_log, f"GET {url}")
