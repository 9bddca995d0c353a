"""One Redis client per process, and the small caches the hot paths share.

- `redis_client()`: the process's one `redis.Redis` for REDIS_URL (its connection pool is reused by every
  request and thread; redis-py resets the pool after a fork), or None without REDIS_URL. Rate limits,
  request metrics and the matcher lock use it instead of opening a connection per request.
- **Token lookups** (`token_cache_get` / `token_cache_fill` / `token_cache_distrust`): a hot authentication
  path (the node agent's heartbeat) keeps `token hash → what it authenticates` (a string) in Redis with
  REDIS_URL (shared by every process; else the Django cache) instead of a database query per request.
  Revocation is immediate despite the cache: revoking or rotating a token first writes a *distrust marker*
  over the hash's entry, and a marked hash is always checked against the database. A fill never overwrites
  a marker (it is an add-if-absent), so a lookup that read the database just before a revocation cannot put
  a stale "valid" entry back. Markers outlive any entry (`MARKER_TTL_S` > `ENTRY_TTL_S`).
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache

if TYPE_CHECKING:
    import redis

ENTRY_TTL_S = 300
MARKER_TTL_S = 3600
DISTRUST = "distrust"
_namespace = "tok1"


@lru_cache(maxsize=4)
def redis_client_for(url: str) -> redis.Redis:
    """One client per URL per process (REDIS_URL's is `redis_client()`)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=30)


def redis_client() -> redis.Redis | None:
    """The process's shared client for REDIS_URL, or None when Redis is not configured."""
    url: str = getattr(settings, "REDIS_URL", "") or ""
    return redis_client_for(url) if url else None


def redis_key(*parts: str) -> str:
    """A key of RigShift's own in Redis: RIGSHIFT_REDIS_KEY_PREFIX (each parallel test worker has its own) + parts."""
    return str(getattr(settings, "RIGSHIFT_REDIS_KEY_PREFIX", "rigshift:")) + ":".join(parts)


def token_cache_namespace_reset() -> None:
    """Forget every cached token lookup (tests: rolled-back rows must not be found through the cache)."""
    global _namespace
    _namespace = f"tok-{uuid.uuid4().hex[:12]}"


def _key(kind: str, token_hash: str) -> str:
    return redis_key(_namespace, kind, token_hash)


def token_cache_get(*, kind: str, token_hash: str) -> str | None:
    """The cached value for `token_hash`, or None when absent or marked (then ask the database)."""
    client = redis_client()
    key = _key(kind, token_hash)
    if client is not None:  # the shared client directly: one GET, no pickling, no per-call client object
        raw = client.get(key)
        value = raw.decode() if isinstance(raw, bytes) else None
    else:
        value = cache.get(key)
    if value is None or value == DISTRUST:
        return None
    return str(value)


def token_cache_fill(*, kind: str, token_hash: str, value: str) -> None:
    """Remember a lookup the database answered; never replaces a distrust marker (add-if-absent)."""
    client = redis_client()
    if client is not None:
        client.set(_key(kind, token_hash), value, nx=True, ex=ENTRY_TTL_S)
    else:
        cache.add(_key(kind, token_hash), value, timeout=ENTRY_TTL_S)


def token_cache_distrust(*, kind: str, token_hash: str) -> None:
    """From now on, every process checks `token_hash` against the database (call BEFORE revoking or rotating)."""
    if not token_hash:
        return
    client = redis_client()
    if client is not None:
        client.set(_key(kind, token_hash), DISTRUST, ex=MARKER_TTL_S)
    else:
        cache.set(_key(kind, token_hash), DISTRUST, timeout=MARKER_TTL_S)


def token_cache_forget(*, kind: str, token_hash: str) -> None:
    """Drop a cached lookup the database contradicted (the next request asks the database)."""
    client = redis_client()
    if client is not None:
        client.delete(_key(kind, token_hash))
    else:
        cache.delete(_key(kind, token_hash))
