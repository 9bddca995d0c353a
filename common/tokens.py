"""Opaque bearer tokens: shown once, stored as a SHA-256 hash, looked up by hash."""

import hashlib
import secrets


def token_generate(*, prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(*, raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
