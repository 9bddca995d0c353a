"""A customer's public SSH keys: added (checked and fingerprinted) and deleted; the agent puts them into the
containers of the customer's jobs that ask for SSH."""

import base64
import binascii
import hashlib
import struct

from django.db import IntegrityError, transaction

from broker.models import SshKey
from common.errors import Conflict, NotFound, ValidationFailed
from marketplace.models import Customer

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MAX_KEYS = 20
MAX_KEY_CHARS = 16_384


def ssh_key_parse(*, public_key: str) -> tuple[str, str, str]:
    """(normalised "type base64 comment", fingerprint "SHA256:…", comment) of one OpenSSH public key line;
    ValidationFailed with the reason otherwise (a private key is refused outright)."""
    text = (public_key or "").strip()
    if "PRIVATE KEY" in text:
        raise ValidationFailed("That is a private key: upload the .pub file (e.g. ~/.ssh/id_ed25519.pub).")
    if not text or len(text) > MAX_KEY_CHARS or "\n" in text:
        raise ValidationFailed("Give one OpenSSH public key line: 'ssh-ed25519 AAAA… comment'.")
    parts = text.split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ValidationFailed(f"Not an OpenSSH public key; the key types accepted are {', '.join(sorted(KEY_TYPES))}.")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("The key's base64 part is damaged.") from None
    if embedded != parts[0]:
        raise ValidationFailed(f"The key says {parts[0]} but holds a {embedded} key.")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    comment = parts[2].strip() if len(parts) > 2 else ""
    return " ".join([parts[0], parts[1], comment]).strip(), f"SHA256:{digest}", comment


def ssh_key_add(*, customer: Customer, public_key: str, name: str = "") -> SshKey:
    """Add a public key to the customer's account (409 when it is there already; at most MAX_KEYS)."""
    line, fingerprint, comment = ssh_key_parse(public_key=public_key)
    with transaction.atomic():
        if SshKey.objects.filter(customer=customer).count() >= MAX_KEYS:
            raise ValidationFailed(f"At most {MAX_KEYS} SSH keys per account; delete one first.")
        try:
            with transaction.atomic():
                return SshKey.objects.create(
                    customer=customer, name=(name or comment)[:100], public_key=line, fingerprint=fingerprint
                )
        except IntegrityError:
            raise Conflict(f"This key ({fingerprint}) is already on your account.") from None


def ssh_key_delete(*, customer: Customer, key_id: int) -> None:
    deleted, _ = SshKey.objects.filter(customer=customer, pk=key_id).delete()
    if not deleted:
        raise NotFound("No such SSH key.")
