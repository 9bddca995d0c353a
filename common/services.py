"""API token services."""

from django.contrib.auth.models import User
from django.utils import timezone

from common.models import ApiToken, AuditLog
from common.tokens import token_generate, token_hash


def api_token_create(*, user: User, name: str = "api") -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the raw token (shown once, never stored)."""
    raw = token_generate(prefix="rs")
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:10], key_hash=token_hash(raw=raw))
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def audit_log(*, actor: User | None, action: str, target: str, details: dict[str, object] | None = None) -> None:
    AuditLog.objects.create(actor=actor, action=action, target=target, details=details or {})
