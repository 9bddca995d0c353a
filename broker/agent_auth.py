"""Node agent authentication: `Authorization: Bearer rsn_…`, the per-node token.

A node token authenticates its node only: the node is derived from the token, never from the
request. Agent endpoints accept nothing else (a user's `rs_` API token or a session gets 401), and
the user authentication (`common.auth.ApiTokenAuthentication`) ignores `rsn_` tokens, so a node
token opens no user API.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from common.auth import bearer_from
from common.cache import token_cache_fill, token_cache_get
from common.tokens import token_hash
from marketplace.models import Node
from marketplace.services.nodes import NODE_TOKEN_CACHE

NODE_TOKEN_PREFIX = "rsn_"


class NodeAgent:
    """The principal behind a node token: authenticated, but no user, no staff, no roles."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, node: Node, token_hash: str = "") -> None:
        self.node = node
        self.token_hash = token_hash  # what the heartbeat statement re-checks against the node row

    def get_username(self) -> str:
        return f"node:{self.node.pk}"

    def __str__(self) -> str:
        return self.get_username()


class NodeTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates the node agent by its token; `request.auth` is the `Node`."""

    keyword = "Bearer"

    def __init__(self, *, cached: bool = False) -> None:
        self.cached = cached

    def authenticate(self, request: Request) -> tuple[NodeAgent, Node]:
        hashed = self.token_hash_from(request)
        if self.cached:
            return self._from_cache(hashed)
        node = Node.objects.select_related("gpu_model").filter(token_hash=hashed).first()
        if node is None:
            raise exceptions.AuthenticationFailed("Invalid node agent token.")
        if node.token_revoked_at is not None:
            raise revoked()
        return NodeAgent(node, hashed), node

    def _from_cache(self, hashed: str) -> tuple[NodeAgent, Node]:
        """`cached=True`, for endpoints whose service re-checks the token in its own statement (the heartbeat):
        `request.auth` is a `Node` holding only its id (other fields load on access) and `request.user.token_hash`
        is what the service must check. On a cache miss (or a distrusted hash) the database answers, and a valid
        answer is cached."""
        cached = token_cache_get(kind=NODE_TOKEN_CACHE, token_hash=hashed)
        if cached is not None:
            node_id = int(cached)
        else:
            row = Node.objects.filter(token_hash=hashed).values_list("pk", "token_revoked_at").first()
            if row is None:
                raise exceptions.AuthenticationFailed("Invalid node agent token.")
            if row[1] is not None:
                raise revoked()
            node_id = row[0]
            token_cache_fill(kind=NODE_TOKEN_CACHE, token_hash=hashed, value=str(node_id))
        node = Node.from_db("default", ["id"], [node_id])
        return NodeAgent(node, hashed), node

    @staticmethod
    def token_hash_from(request: Request) -> str:
        raw = bearer_from(request)
        if raw is None:
            raise exceptions.AuthenticationFailed(
                "Missing node agent token: send 'Authorization: Bearer rsn_…' with the token shown "
                "when the node was registered."
            )
        if not raw.startswith(NODE_TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed(
                "The agent API accepts node agent tokens (rsn_…) only; user API tokens are not valid here."
            )
        return token_hash(raw=raw)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def revoked() -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed(
        "This node agent token was revoked; generate a new one in the provider portal."
    )


class IsNodeAgent(permissions.BasePermission):
    message = "Only a node agent (with its node token) may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Node) and isinstance(request.user, NodeAgent)


class NodeTokenScheme(OpenApiAuthenticationExtension):
    target_class = "broker.agent_auth.NodeTokenAuthentication"
    name = "nodeAgentToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Per-node agent token (rsn_…), shown once when the provider registers the node.",
        }
