"""Recording who is behind an account, for the related-party rule (financing/selectors/parties.py).

Only a keyed hash of each value is stored (HMAC-SHA256 with SECRET_KEY): enough to see that two accounts share
one, never the address or card itself. Recorded:

  * the public network address of every login (Django's `user_logged_in`, connected in financing/apps.py);
    loopback, private, link-local and other non-global addresses identify nobody and are not recorded;
  * the card fingerprint of a paid top-up (the Stripe `charge.succeeded` webhook, through billing's webhook
    handler hook, see services/gateway_events.py).
"""

import hashlib
import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import timezone

from common.ratelimit import client_ip
from financing.models import PartySignal, PartySignalKind


def party_value_hash(*, kind: str, value: str) -> str:
    normalised = value.strip().lower()
    return hmac.new(settings.SECRET_KEY.encode(), f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def party_signal_record(*, user: User, kind: str, value: str) -> PartySignal | None:
    """Remember that `user` used `value` (a network address or a payment-method fingerprint); None if not kept."""
    if kind not in PartySignalKind.values or not value.strip():
        return None
    if kind == PartySignalKind.NETWORK:
        try:
            if not ipaddress.ip_address(value.strip()).is_global:
                return None
        except ValueError:
            return None
    now = timezone.now()
    signal, created = PartySignal.objects.get_or_create(
        user=user,
        kind=kind,
        value_hash=party_value_hash(kind=kind, value=value),
        defaults={"first_seen": now, "last_seen": now},
    )
    if not created:
        PartySignal.objects.filter(pk=signal.pk).update(last_seen=now)
    return signal


def party_signal_on_login(sender: object, *, request: HttpRequest | None, user: User, **kwargs: object) -> None:
    """`user_logged_in` receiver: record the login's network address."""
    if request is not None:
        party_signal_record(user=user, kind=PartySignalKind.NETWORK, value=client_ip(request))
