"""CPU per request of the hot endpoints, in-process, as multiples of the trivial-view floor: `python -m bench.hotpaths`.

Re-creates a PostgreSQL database (--reuse keeps it), migrates and seeds it the way `bench.load` does (the demo
market, funded customers with API tokens, providers' tokens, the demo nodes' agent tokens), then calls the WSGI
application directly (the whole middleware stack, no HTTP server, no load generator) for each endpoint in turn,
in interleaved rounds, and measures the CPU time this process spent per request (`time.process_time`: the web
side of a request, including its database and Redis client work, excluding PostgreSQL's and Redis's own CPU):

- `floor`: `GET /healthz/live`, a trivial JSON view behind the same middleware;
- `heartbeat`: `POST /api/v1/agent/heartbeat` (no usage reports), a new seq each time;
- `search`: `GET /api/v1/offers/?q=…&limit=20`, the locustfile's queries;
- `booking`: `POST /api/v1/jobs/`, the locustfile's small job;
- `provider_nodes`: `GET /api/v1/nodes/`;
- `job_detail`: `GET /api/v1/jobs/<id>/` of a job the bench booked.

Because the machine may be shared, read the multiples (`x_floor_<name>`), which come from the same run, rather than
the absolute figures. Prints `cpu_ms_<name>=…`, `x_floor_<name>=…`, `queries_<name>=…` per endpoint and, last,
`mix_x_floor=…`: the mean CPU per request of `bench.load`'s mix (heartbeats 45 %, searches and bookings 22.5 %
each, provider node lists 10 %) as a multiple of the floor. `--profile NAME` prints a pyinstrument profile of
that endpoint instead.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.load import _env, _flush_redis, _prepare, _recreate_database

MIX = {"heartbeat": 0.45, "search": 0.225, "booking": 0.225, "provider_nodes": 0.10}
REGIONS: tuple[list[str], ...] = (["eu"], ["us"], ["eu", "us"], [])  # as in bench/locustfile.py
SEARCHES = (
    "gpu_ram>=24 num_gpus>=1",
    "gpu_ram>=40 region in [eu,us] verified==true",
    "num_gpus>=4 reliability>=0.95",
    "gpu_ram>=80",
    "",
)


def _environ(method: str, path: str, *, query: str = "", body: bytes = b"", token: str = "") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_ACCEPT": "application/json",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return environ


class Endpoints:
    """One request maker per endpoint (each returns the WSGI environ of its next request)."""

    def __init__(self, credentials: dict[str, list[str]]) -> None:
        self.nodes = itertools.cycle(credentials["nodes"])
        self.customers = itertools.cycle(credentials["customers"])
        self.providers = itertools.cycle(credentials["providers"])
        self.seq = itertools.count(int(time.time() * 1000))
        self.jobs: list[tuple[str, int]] = []

    def floor(self) -> dict[str, Any]:
        return _environ("GET", "/healthz/live")

    def heartbeat(self) -> dict[str, Any]:
        body = {
            "seq": next(self.seq),
            "status": "ok",
            "gpus": [{"index": 0, "utilisation": round(random.random(), 2), "temperature_c": 65}],
            "leases": [],
        }
        return _environ("POST", "/api/v1/agent/heartbeat", body=json.dumps(body).encode(), token=next(self.nodes))

    def search(self) -> dict[str, Any]:
        from urllib.parse import urlencode

        query = urlencode({"q": random.choice(SEARCHES), "limit": "20"})
        return _environ("GET", "/api/v1/offers/", query=query, token=next(self.customers))

    def booking(self) -> dict[str, Any]:
        body = {
            "image": "ghcr.io/rigshift/load:latest",
            "gpu_count": 1,
            "min_gpu_ram": "16",
            "duration_hours": "0.1",
            "max_price": "0.60",
            "regions": random.choice(REGIONS),
            "verified_only": True,
        }
        return _environ("POST", "/api/v1/jobs/", body=json.dumps(body).encode(), token=next(self.customers))

    def provider_nodes(self) -> dict[str, Any]:
        return _environ("GET", "/api/v1/nodes/", token=next(self.providers))

    def job_detail(self) -> dict[str, Any]:
        token, job_id = random.choice(self.jobs)
        return _environ("GET", f"/api/v1/jobs/{job_id}/", token=token)


def _call(app: Callable[..., Any], environ: dict[str, Any], expect: tuple[int, ...] = (200, 201)) -> bytes:
    status: list[str] = []
    result = app(environ, lambda s, headers, exc_info=None: status.append(s))
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()  # request_finished: what gunicorn does after each response
    code = int(status[0].split()[0])
    if code not in expect:
        raise SystemExit(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}: {status[0]} {body[:300]!r}")
    return body


def _measure(
    app: Callable[..., Any], endpoints: Endpoints, names: list[str], rounds: int, batch: int
) -> tuple[dict[str, float], dict[str, float]]:
    """CPU seconds and queries per request per endpoint, over interleaved rounds of `batch` requests each."""
    from django.db import connection, reset_queries

    cpu = dict.fromkeys(names, 0.0)
    queries = dict.fromkeys(names, 0.0)
    for _ in range(rounds):
        for name in names:
            make = getattr(endpoints, name)
            environs = [make() for _ in range(batch)]
            started = time.process_time()
            for environ in environs:
                _call(app, environ)
            cpu[name] += time.process_time() - started
        # one more request per endpoint with query logging on (not timed)
        for name in names:
            connection.force_debug_cursor = True
            reset_queries()
            _call(app, getattr(endpoints, name)())
            queries[name] += len(connection.queries)
            connection.force_debug_cursor = False
    total = rounds * batch
    return {n: cpu[n] / total for n in names}, {n: queries[n] / rounds for n in names}


def _profile(app: Callable[..., Any], endpoints: Endpoints, name: str, count: int) -> None:
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    get_stack_sampler().timer_func = time.process_time  # sample CPU time: waiting on a loaded machine is not work
    environs: Iterator[dict[str, Any]] = (getattr(endpoints, name)() for _ in range(count))
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for environ in environs:
        _call(app, environ)
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_hotpaths")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=15, help="requests per endpoint per round")
    parser.add_argument("--reuse", action="store_true", help="keep the database (skip drop/create and seeding)")
    parser.add_argument("--profile", choices=[*MIX, "floor", "job_detail"], help="print a pyinstrument profile")
    args = parser.parse_args()

    credentials = Path(tempfile.gettempdir()) / f"rigshift-hotpaths-{args.database_url.rsplit('/', 1)[1]}.json"
    if not args.reuse or not credentials.exists():
        _recreate_database(args.database_url)
        _flush_redis(args.redis_url)
        _prepare(_env(args.database_url, args.redis_url, debug=True), credentials)
    _flush_redis(args.redis_url)  # no rate-limit counters or queued tasks from an earlier run
    os.environ.update(_env(args.database_url, args.redis_url, debug=False))
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    endpoints = Endpoints(json.loads(credentials.read_text()))

    # bookings made here give job_detail its jobs (each with the token of the customer who booked it)
    customers = itertools.cycle(json.loads(credentials.read_text())["customers"])
    for _ in range(20):
        token = next(customers)
        environ = endpoints.booking()
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        job = json.loads(_call(app, environ))
        endpoints.jobs.append((token, int(job["id"])))
    for name in ("floor", "heartbeat", "search", "provider_nodes", "job_detail", "booking"):
        for _ in range(20):
            _call(app, getattr(endpoints, name)())

    if args.profile:
        _profile(app, endpoints, args.profile, args.rounds * args.batch)
        return
    names = ["floor", "heartbeat", "search", "booking", "provider_nodes", "job_detail"]
    cpu, queries = _measure(app, endpoints, names, args.rounds, args.batch)
    floor = cpu["floor"]
    for name in names:
        print(f"cpu_ms_{name}={cpu[name] * 1000:.3f}")
    for name in names:
        print(f"queries_{name}={queries[name]:.1f}")
    for name in names[1:]:
        print(f"x_floor_{name}={cpu[name] / floor:.2f}")
    mix = sum(weight * cpu[name] for name, weight in MIX.items())
    print(f"cpu_ms_mix={mix * 1000:.3f}")
    print(f"mix_x_floor={mix / floor:.2f}")


if __name__ == "__main__":
    main()
