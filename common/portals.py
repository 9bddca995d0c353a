"""The four portals, one per role: where each lives, who may use it, how to sign up for it.

One table drives the landing page after login (`role_landing`), the sign-up links beside every login, and the
page a user sees when opening another role's portal (`portal_for_path`). Pure: no app is imported; a user's
roles are read as attributes (`user.provider`, `user.customer`, `user.lender`, `user.is_staff`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Portal:
    key: str
    name: str  # "Provider portal"
    role: str  # "provider", as in "a provider account"
    prefix: str  # URL paths under this prefix belong to the portal
    signup_url: str | None  # None: no self sign-up (staff accounts are made by an administrator)
    pitch: str  # what the role does, for sign-up links: "Sell GPU capacity"
    has_role: Callable[[Any], bool]

    @property
    def url(self) -> str:
        return self.prefix


def _has(attribute: str) -> Callable[[Any], bool]:
    def check(user: Any) -> bool:
        return bool(getattr(user, "is_authenticated", False)) and hasattr(user, attribute)

    return check


def _staff(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False))


# In landing order: a user with several roles lands on the first portal they may use.
PORTALS: tuple[Portal, ...] = (
    Portal(
        "provider",
        "Provider portal",
        "provider",
        "/provider/",
        "/provider/signup/",
        "Sell GPU capacity",
        _has("provider"),
    ),
    Portal("customer", "Customer portal", "customer", "/app/", "/app/signup/", "Rent GPUs", _has("customer")),
    Portal("lender", "Lender portal", "lender", "/lender/", "/lender/signup/", "Lend to providers", _has("lender")),
    Portal("staff", "Matching console", "staff", "/console/", None, "Operate the marketplace", _staff),
)


def portals_of(user: Any) -> list[Portal]:
    """The portals this user may open, in landing order."""
    return [portal for portal in PORTALS if portal.has_role(user)]


def role_landing(user: Any) -> str:
    """Where a user lands after logging in: their first portal, or the home page for a user without a role."""
    own = portals_of(user)
    return own[0].url if own else "/"


def portal_for_path(path: str) -> Portal | None:
    """The portal a URL path belongs to (the longest matching prefix), or None."""
    matches = [portal for portal in PORTALS if path.startswith(portal.prefix)]
    return max(matches, key=lambda portal: len(portal.prefix)) if matches else None


def signup_portals() -> list[Portal]:
    """The portals anyone may sign up for, for the links beside every login."""
    return [portal for portal in PORTALS if portal.signup_url]
