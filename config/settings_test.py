"""Test override: fast hashing, tasks run eagerly unless a test starts a real worker.

Under `pytest -n` each xdist worker (PYTEST_XDIST_WORKER = gw0, gw1, …) gets its own var/ folder (file locks,
Celery folders, anything a test writes there; inherited by the processes a test starts) and its own Redis key
prefix (cache, metrics counters, matcher locks), so workers sharing one Redis database never see each other's keys.
Its test database is set up in tests/parallel.py.
"""

import os
from pathlib import Path

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER and "RIGSHIFT_VAR_DIR" not in os.environ:
    os.environ["RIGSHIFT_VAR_DIR"] = str(Path(__file__).resolve().parent.parent / "var" / f"test-{_WORKER}")

from config.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
if not REDIS_URL:  # noqa: F405
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
elif _WORKER:
    RIGSHIFT_REDIS_KEY_PREFIX = f"rigshift:test-{_WORKER}:"
    CACHES = {"default": {**CACHES["default"], "KEY_PREFIX": RIGSHIFT_REDIS_KEY_PREFIX}}
    RIGSHIFT_METRICS_KEY_PREFIX = f"{RIGSHIFT_REDIS_KEY_PREFIX}metrics:"
    CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": RIGSHIFT_REDIS_KEY_PREFIX}  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
