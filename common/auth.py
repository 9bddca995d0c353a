"""DRF authentication by per-user API token: `Authorization: Bearer <token>` (or `Token <token>`)."""

from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from common.models import ApiToken
from common.tokens import token_hash


def bearer_from(request: Request) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1", "replace").split()
    if len(header) != 2 or header[0].lower() not in ("bearer", "token"):
        return None
    return header[1]


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        raw = bearer_from(request)
        if raw is None or not raw.startswith("rs_"):
            return None
        # The role rows come with the user (RIGSHIFT_API_TOKEN_ROLES, e.g. user__customer): the role permission
        # checks then cost no query of their own.
        related = ("user", *getattr(settings, "RIGSHIFT_API_TOKEN_ROLES", ()))
        token = ApiToken.objects.select_related(*related).filter(key_hash=token_hash(raw=raw)).first()
        if token is None or token.revoked_at is not None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
