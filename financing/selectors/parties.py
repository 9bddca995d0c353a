"""The related-party rule: which customers of a provider are not at arm's length.

Underwriting counts only settled payments from customers unrelated to the provider. A customer account is a
related party of a provider when any of these holds:

  1. same person: the customer account is the provider's own account, or has the same e-mail address;
  2. same e-mail domain: both addresses are at one domain, unless that domain identifies no organisation
     (public webmail such as gmail.com, and the reserved example/test names of RFC 2606 and RFC 6761);
  3. same payment method: both accounts paid with one card (its fingerprint, services/parties.py);
  4. same network address: both accounts logged in from one public network address.

Each match is reported with its reason, so staff and the provider see why an earning was not counted.
"""

from collections import defaultdict
from collections.abc import Iterable

from django.contrib.auth.models import User

from financing.models import PartySignal, PartySignalKind

PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
        "126.com",
        "naver.com",
    }
)
RESERVED_DOMAINS = frozenset({"example.com", "example.net", "example.org"})
RESERVED_TLDS = (".test", ".example", ".invalid", ".localhost")


def mail_domain(email: str) -> str | None:
    """The domain of `email` when it can identify an organisation, else None."""
    if "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower().rstrip(".")
    if not domain or domain in PUBLIC_MAIL_DOMAINS or domain in RESERVED_DOMAINS or domain.endswith(RESERVED_TLDS):
        return None
    return domain


def _signals(user_ids: Iterable[int]) -> dict[int, set[tuple[str, str]]]:
    out: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for user_id, kind, value in PartySignal.objects.filter(user_id__in=list(user_ids)).values_list(
        "user_id", "kind", "value_hash"
    ):
        out[user_id].add((kind, value))
    return out


def related_parties(*, provider_user: User, customer_ids: Iterable[int]) -> dict[int, list[str]]:
    """{customer user id: reasons} for the customers among `customer_ids` related to the provider."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    users = {u.pk: u for u in User.objects.filter(pk__in=ids).only("pk", "email")}
    signals = _signals([provider_user.pk, *ids])
    mine = signals.get(provider_user.pk, set())
    my_email = (provider_user.email or "").strip().lower()
    my_domain = mail_domain(my_email)
    labels = {PartySignalKind.NETWORK: "same network address", PartySignalKind.PAYMENT_METHOD: "same payment method"}
    found: dict[int, list[str]] = {}
    for cid in ids:
        reasons = []
        email = (users[cid].email or "").strip().lower() if cid in users else ""
        if cid == provider_user.pk or (email and email == my_email):
            found[cid] = ["same person"]
            continue
        if my_domain and mail_domain(email) == my_domain:
            reasons.append(f"same e-mail domain ({my_domain})")
        shared = {kind for kind, value in signals.get(cid, set()) if (kind, value) in mine}
        reasons += [labels[PartySignalKind(kind)] for kind in sorted(shared)]
        if reasons:
            found[cid] = reasons
    return found
