"""One active matcher per market shard.

With REDIS_URL: a Redis lock (redis-py `Lock`, SET NX with an expiry, so a crashed matcher's lock
lapses after `ttl_s`). Without Redis (embedded defaults, SQLite): an exclusive `fcntl` file lock in
VAR_DIR/locks/, held by the process for the duration of the round and released by the OS if the
process dies. Both are non-blocking by default: a second matcher skips the round.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings


@contextlib.contextmanager
def shard_lock(*, shard: str, ttl_s: int | None = None, wait_s: float = 0.0) -> Iterator[bool]:
    """Yield True when this process holds the shard's matcher lock, False when another one does.

    The Redis lock lapses `ttl_s` after it was taken (default: settings.RIGSHIFT_MATCH_LOCK_TTL_S): that is how
    long matching of the shard pauses after a matcher is killed mid-round. Keep it above the longest round."""
    name = f"{getattr(settings, 'RIGSHIFT_REDIS_KEY_PREFIX', 'rigshift:')}match-lock:{shard}"
    if ttl_s is None:
        ttl_s = int(getattr(settings, "RIGSHIFT_MATCH_LOCK_TTL_S", 120))
    redis_url = getattr(settings, "REDIS_URL", "")
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        lock = client.lock(name, timeout=ttl_s, blocking_timeout=wait_s or None, blocking=wait_s > 0)
        acquired = bool(lock.acquire())
        try:
            yield acquired
        finally:
            if acquired:
                with contextlib.suppress(Exception):  # expired meanwhile: nothing to release
                    lock.release()
        return
    directory = Path(settings.VAR_DIR) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"match-{shard}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait_s > 0 else fcntl.LOCK_NB))
            acquired = True
        except BlockingIOError:
            acquired = False
        try:
            yield acquired
        finally:
            if acquired:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
