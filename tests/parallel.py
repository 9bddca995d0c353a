"""Running the suite in parallel (`pytest -n auto`, what `make test` does): databases, groups, Hypothesis profiles.

Each xdist worker (gw0, gw1, …) has its own test database, Redis key prefix and var/ folder (the last two are set in
config/settings_test.py from PYTEST_XDIST_WORKER). Migrating one database per worker costs 10–20 s each, so the
test database is built once from the migrations and copied:

* a **template** is migrated once per set of migrations: its name (PostgreSQL) or file (SQLite, under
  var/test-db/) carries a hash of every migration file and the Django version, so it is rebuilt when a migration
  changes and reused otherwise, also by the next run. `--create-db` rebuilds it.
* each worker **clones** it: `CREATE DATABASE test_<name>_gw0 TEMPLATE …` on PostgreSQL (what Django's own parallel
  runner does), SQLite's backup API into the worker's in-memory database on SQLite.

A PostgreSQL advisory lock (SQLite: a file lock) makes the workers build the template one at a time: the first
builds, the others wait and clone. `--reuse-db`, serialized rollback or several databases fall back to
pytest-django's own setup.

Tests that must share a process are grouped (`--dist loadgroup`): browser tests share one Chromium and one live
server; integration tests start real stacks of processes and would starve each other if run side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "var" / "test-db"

# ------------------------------------------------------------------------------------------------ Hypothesis

# `ci`: the same examples on every run (derandomize), nothing read from or written to .hypothesis/, and the
# reproduction blob printed on failure (pin it with @example). `dev`: random search, failures remembered locally.
# Neither has a deadline: timings on a shared 2-core machine are noise.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "dev")
)

# ------------------------------------------------------------------------------------------------ groups

# Folder under tests/ → the xdist group all of its tests run in (one worker each, with --dist loadgroup).
GROUPS = {"browser": "browser", "integration": "integration"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks (it appends the group to each node id)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).relative_to(ROOT).parts
        if len(parts) > 1 and parts[0] == "tests" and parts[1] in GROUPS and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(GROUPS[parts[1]]))


# ------------------------------------------------------------------------------------------------ databases


def migrations_digest() -> str:
    """Hash of what the migrated schema depends on: every project migration file and the Django version."""
    digest = hashlib.sha256(django.get_version().encode())
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest,
    django_test_environment: None,
    django_db_blocker: Any,
    django_db_use_migrations: bool,
    django_db_keepdb: bool,
    django_db_createdb: bool,
    django_db_modify_db_settings: None,
) -> Iterator[None]:
    """pytest-django's test database setup, with the template clone described above where it applies."""
    from django.conf import settings
    from django.db import connections
    from pytest_django.fixtures import _get_databases_for_setup

    aliases, serialized_aliases = _get_databases_for_setup(request.session.items)
    vendor = connections["default"].vendor
    if (
        not aliases
        or set(settings.DATABASES) != {"default"}
        or serialized_aliases
        or django_db_keepdb
        or not django_db_use_migrations
        or vendor not in {"postgresql", "sqlite"}
    ):
        yield from _pytest_django_setup(request, django_db_blocker, django_db_keepdb, django_db_createdb, aliases)
        return
    verbosity = request.config.option.verbose
    connection = connections["default"]
    with django_db_blocker.unblock():
        if vendor == "postgresql":
            name = _postgres_clone(connection, rebuild=django_db_createdb, verbosity=verbosity)
        else:
            name = _sqlite_clone(connection, rebuild=django_db_createdb, verbosity=verbosity)
    yield
    if vendor == "postgresql":
        with django_db_blocker.unblock():
            _postgres_drop(connection, name, request)


def _pytest_django_setup(
    request: pytest.FixtureRequest, blocker: Any, keepdb: bool, createdb: bool, aliases: set[str]
) -> Iterator[None]:
    """pytest-django's `django_db_setup` (migrations on), for the cases the template does not cover."""
    from django.test.utils import setup_databases, teardown_databases
    from pytest_django.fixtures import _get_databases_for_setup

    _, serialized_aliases = _get_databases_for_setup(request.session.items)
    verbosity = request.config.option.verbose
    with blocker.unblock():
        db_cfg = setup_databases(
            verbosity=verbosity,
            interactive=False,
            aliases=aliases,
            serialized_aliases=serialized_aliases,
            **({"keepdb": True} if keepdb and not createdb else {}),
        )
    yield
    if not keepdb:
        with blocker.unblock():
            try:
                teardown_databases(db_cfg, verbosity=verbosity)
            except Exception as exc:  # noqa: BLE001 — as pytest-django: a warning, not a failure
                request.node.warn(pytest.PytestWarning(f"Error when trying to teardown test databases: {exc!r}"))


def _use_database(connection: Any, name: str) -> None:
    from django.conf import settings

    connection.close()
    settings.DATABASES[connection.alias]["NAME"] = name
    connection.settings_dict["NAME"] = name


def _template_build(connection: Any, template: str, *, verbosity: int) -> None:
    """Create and migrate `template` (Django's create_test_db with the template as test database name)."""
    worker_test_name = connection.settings_dict["TEST"].get("NAME")
    original_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = template
    try:
        connection.creation.create_test_db(verbosity=verbosity, autoclobber=True, serialize=False)
    finally:
        connection.close()
        connection.settings_dict["TEST"]["NAME"] = worker_test_name
        _use_database(connection, original_name)


def _postgres_clone(connection: Any, *, rebuild: bool, verbosity: int) -> str:
    """Clone the migrated template into this worker's test database; return that database's name."""
    quote = connection.ops.quote_name
    base = f"test_{connection.settings_dict['NAME']}"
    template = f"{base}_tpl_{migrations_digest()}"[:63]
    target = connection.creation._get_test_db_name()
    lock_key = int(hashlib.sha256(base.encode()).hexdigest()[:15], 16)
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key])
        try:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{base}\\_tpl\\_%"])
            templates = {row[0] for row in cursor.fetchall()}
            if rebuild or template not in templates:
                _template_build(connection, template, verbosity=verbosity)
            for stale in templates - {template}:  # older migrations: nobody clones these any more
                with contextlib.suppress(Exception):
                    cursor.execute(f"DROP DATABASE IF EXISTS {quote(stale)}")
            if verbosity >= 1:
                print(f"Cloning test database {target} from {template}")
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(target)}")
            cursor.execute(f"CREATE DATABASE {quote(target)} TEMPLATE {quote(template)}")
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key])
    _use_database(connection, target)
    connection.ensure_connection()
    return target


def _postgres_drop(connection: Any, name: str, request: pytest.FixtureRequest) -> None:
    connection.close()
    try:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(name)} WITH (FORCE)")
    except Exception as exc:  # noqa: BLE001 — a leftover test database is dropped by the next run's clone
        request.node.warn(pytest.PytestWarning(f"Could not drop test database {name}: {exc!r}"))


def _sqlite_clone(connection: Any, *, rebuild: bool, verbosity: int) -> str:
    """Copy the migrated template file into this worker's test database (in memory unless TEST NAME says)."""
    TEMPLATE_DIR.mkdir(parents=True, exist_ok=True)
    template = TEMPLATE_DIR / f"sqlite-{migrations_digest()}.sqlite3"
    with open(TEMPLATE_DIR / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rebuild or not template.exists():
            building = template.with_suffix(f".{os.getpid()}.tmp")
            _template_build(connection, str(building), verbosity=verbosity)
            with contextlib.closing(sqlite3.connect(building)) as db:
                db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            building.replace(template)
            for stale in TEMPLATE_DIR.glob("sqlite-*.sqlite3"):
                if stale != template:
                    stale.unlink(missing_ok=True)
    target = connection.creation._get_test_db_name()
    if not connection.creation.is_in_memory_db(target):
        Path(target).unlink(missing_ok=True)
    if verbosity >= 1:
        print(f"Copying test database {target} from {template}")
    _use_database(connection, target)
    connection.ensure_connection()
    with contextlib.closing(sqlite3.connect(template)) as source:
        source.backup(connection.connection)
    return target
