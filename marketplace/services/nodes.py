"""Nodes, provider side: registration, the per-node agent token, and the listing (prices, availability)."""

import ipaddress
import re
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.cache import token_cache_distrust
from common.errors import ValidationFailed
from common.money import format_rate, format_usd
from common.services import audit_log
from common.tokens import token_generate, token_hash
from marketplace.countries import country_normalize
from marketplace.models import GPUModel, Node, Provider, Region

MAX_GPUS_PER_NODE = 16
MAX_PRICE_MICROS = 100_000_000  # $100 per GPU-hour
AGENT_TOKEN_PREFIX = "rsn"
NODE_TOKEN_CACHE = "node-token"  # common.cache kind of the agent's token lookups (broker.agent_auth)

# Upper bounds that catch typos (a RAM figure entered in MB) without refusing real machines.
_SPEC_LIMITS = {
    "cpu_cores": 4096,
    "ram_gb": 65_536,
    "disk_gb": 10_000_000,
    "inet_down_mbps": 1_000_000,
    "inet_up_mbps": 1_000_000,
}


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationFailed(first, details=errors)


def _listing_errors(
    *,
    price_micros: int,
    min_bid_micros: int,
    available_from: datetime | None,
    available_until: datetime | None,
    listed: bool,
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if price_micros < 0:
        errors["price_per_gpu_hour"] = ["The price per GPU-hour cannot be negative."]
    elif price_micros > MAX_PRICE_MICROS:
        errors["price_per_gpu_hour"] = [f"The price per GPU-hour is at most {format_usd(micros=MAX_PRICE_MICROS)}."]
    if min_bid_micros < 0:
        errors["min_bid_per_gpu_hour"] = ["The minimum interruptible bid cannot be negative."]
    elif "price_per_gpu_hour" not in errors and min_bid_micros > price_micros:
        errors["min_bid_per_gpu_hour"] = [
            f"The minimum interruptible bid ({format_rate(micros=min_bid_micros, unit='GPU-hour')}) cannot exceed "
            f"the on-demand price ({format_rate(micros=price_micros, unit='GPU-hour')})."
        ]
    if available_from is not None and available_until is not None and available_from >= available_until:
        errors["available_until"] = ["The end of the availability window must be after its start."]
    if listed and price_micros <= 0 and "price_per_gpu_hour" not in errors:
        errors["listed"] = ["Set a price per GPU-hour above $0 before listing the node."]
    return errors


def _new_token() -> tuple[str, str, str]:
    raw = token_generate(prefix=AGENT_TOKEN_PREFIX)
    return raw, raw[:12], token_hash(raw=raw)


def node_register(  # noqa: C901 — to split into named steps
    *,
    provider: Provider,
    name: str,
    region: str,
    country: str,
    gpu_model_slug: str,
    gpu_count: int,
    cpu_cores: int = 0,
    ram_gb: int = 0,
    disk_gb: int = 0,
    inet_down_mbps: int = 0,
    inet_up_mbps: int = 0,
    price_micros: int = 0,
    min_bid_micros: int = 0,
    listed: bool = False,
) -> tuple[Node, str]:
    """Register a node for `provider`; returns it and its raw agent token (shown once, stored hashed)."""
    name = name.strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Give the node a name."]
    elif len(name) > 100:
        errors["name"] = ["Node names are at most 100 characters."]
    elif Node.objects.filter(provider=provider, name=name).exists():
        errors["name"] = [f"You already have a node named {name!r}."]
    if region not in Region.values:
        errors["region"] = [f"Unknown region {region!r}; choose one of {', '.join(Region.values)}."]
    country_code = country_normalize(country)
    if country_code is None:
        errors["country"] = [f"{country!r} is not an ISO 3166-1 alpha-2 country code (for example DE, US, GB)."]
    gpu_model = GPUModel.objects.filter(slug=gpu_model_slug).first()
    if gpu_model is None:
        errors["gpu_model"] = [
            f"Unknown GPU model {gpu_model_slug!r}; use a slug from the catalog (GET /api/v1/gpu-models/)."
        ]
    if not 1 <= gpu_count <= MAX_GPUS_PER_NODE:
        errors["gpu_count"] = [f"A node has between 1 and {MAX_GPUS_PER_NODE} GPUs."]
    specs = {
        "cpu_cores": cpu_cores,
        "ram_gb": ram_gb,
        "disk_gb": disk_gb,
        "inet_down_mbps": inet_down_mbps,
        "inet_up_mbps": inet_up_mbps,
    }
    for field, value in specs.items():
        if value < 0:
            errors[field] = ["Cannot be negative."]
        elif value > _SPEC_LIMITS[field]:
            errors[field] = [f"At most {_SPEC_LIMITS[field]:,}."]
    errors.update(
        _listing_errors(
            price_micros=price_micros,
            min_bid_micros=min_bid_micros,
            available_from=None,
            available_until=None,
            listed=listed,
        )
    )
    _raise_if(errors)
    assert gpu_model is not None and country_code is not None
    raw, prefix, hashed = _new_token()
    try:
        with transaction.atomic():
            node = Node.objects.create(
                provider=provider,
                name=name,
                region=region,
                country=country_code,
                gpu_model=gpu_model,
                gpu_count=gpu_count,
                price_micros=price_micros,
                min_bid_micros=min_bid_micros,
                listed=listed,
                token_prefix=prefix,
                token_hash=hashed,
                **specs,
            )
            audit_log(actor=provider.user, action="node.register", target=f"node:{node.pk}", details={"name": name})
    except IntegrityError as exc:  # a concurrent registration took the name
        message = f"You already have a node named {name!r}."
        raise ValidationFailed(message, details={"name": [message]}) from exc
    return node, raw


def node_token_rotate(*, node: Node) -> str:
    """Issue a new agent token for `node` (returned raw, once); the old token stops working at once."""
    raw, prefix, hashed = _new_token()
    with transaction.atomic():
        locked = Node.objects.select_for_update().get(pk=node.pk)
        token_cache_distrust(kind=NODE_TOKEN_CACHE, token_hash=locked.token_hash)  # before the old one stops
        locked.token_prefix = prefix
        locked.token_hash = hashed
        locked.token_revoked_at = None
        locked.save(update_fields=["token_prefix", "token_hash", "token_revoked_at", "updated_at"])
        audit_log(actor=locked.provider.user, action="node.token_rotate", target=f"node:{locked.pk}")
    node.token_prefix, node.token_hash, node.token_revoked_at = prefix, hashed, None
    return raw


def node_token_revoke(*, node: Node) -> Node:
    """Revoke the node's agent token: the agent is refused until the provider rotates in a new one."""
    with transaction.atomic():
        locked = Node.objects.select_for_update().get(pk=node.pk)
        token_cache_distrust(kind=NODE_TOKEN_CACHE, token_hash=locked.token_hash)  # no cached lookup outlives it
        if locked.token_revoked_at is None:
            locked.token_revoked_at = timezone.now()
            locked.save(update_fields=["token_revoked_at", "updated_at"])
            audit_log(actor=locked.provider.user, action="node.token_revoke", target=f"node:{locked.pk}")
    node.token_revoked_at = locked.token_revoked_at
    return node


MAX_STORAGE_PRICE_MICROS = 10_000_000  # $10 per GB-month
MAX_EGRESS_PRICE_MICROS = 10_000_000  # $10 per GB


def _storage_egress_errors(
    *, storage_price_micros: int | None, egress_price_micros: int | None
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for field, value, unit, cap in (
        ("storage_price_per_gb_month", storage_price_micros, "GB-month", MAX_STORAGE_PRICE_MICROS),
        ("egress_price_per_gb", egress_price_micros, "GB", MAX_EGRESS_PRICE_MICROS),
    ):
        if value is None:
            continue
        if value < 0:
            errors[field] = [f"The price per {unit} cannot be negative."]
        elif value > cap:
            errors[field] = [f"The price per {unit} is at most {format_usd(micros=cap)}."]
    return errors


def node_update_listing(
    *,
    node: Node,
    price_micros: int,
    min_bid_micros: int,
    available_from: datetime | None,
    available_until: datetime | None,
    listed: bool,
    storage_price_micros: int | None = None,
    egress_price_micros: int | None = None,
) -> Node:
    """Set the node's on-demand price, minimum interruptible bid, availability window and listing.

    `storage_price_micros` (per GB-month) and `egress_price_micros` (per GB) are the optional storage and egress
    prices (0 = not charged); None leaves them unchanged. Leases started afterwards are billed at them.
    """
    _raise_if(
        _listing_errors(
            price_micros=price_micros,
            min_bid_micros=min_bid_micros,
            available_from=available_from,
            available_until=available_until,
            listed=listed,
        )
        | _storage_egress_errors(storage_price_micros=storage_price_micros, egress_price_micros=egress_price_micros)
    )
    fields = ["price_micros", "min_bid_micros", "available_from", "available_until", "listed"]
    with transaction.atomic():
        locked = Node.objects.select_for_update().get(pk=node.pk)
        locked.price_micros = price_micros
        locked.min_bid_micros = min_bid_micros
        locked.available_from = available_from
        locked.available_until = available_until
        locked.listed = listed
        if storage_price_micros is not None:
            locked.storage_price_micros = storage_price_micros
            fields.append("storage_price_micros")
        if egress_price_micros is not None:
            locked.egress_price_micros = egress_price_micros
            fields.append("egress_price_micros")
        locked.save(update_fields=[*fields, "updated_at"])
        audit_log(
            actor=locked.provider.user,
            action="node.update_listing",
            target=f"node:{locked.pk}",
            details={
                "price_micros": price_micros,
                "min_bid_micros": min_bid_micros,
                "listed": listed,
                "storage_price_micros": locked.storage_price_micros,
                "egress_price_micros": locked.egress_price_micros,
            },
        )
    for field in fields:
        setattr(node, field, getattr(locked, field))
    return node


PORT_MIN, PORT_MAX, PORT_RANGE_MAX = 1024, 65535, 10_000
_HOST = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


def _host_ok(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST.match(host))
    return True


def node_connection_update(*, node: Node, public_host: str, port_range_start: int, port_range_end: int) -> Node:
    """Set where customers reach this node's workloads: its public address (IP or DNS name, no scheme or
    port) and the host port range the agent maps container ports to (1024–65535, at most 10,000 ports).
    The agent checks at start that it can bind the range (and `rigshift-agent doctor` says how to fix it)."""
    host = public_host.strip()
    errors: dict[str, list[str]] = {}
    if host and not _host_ok(host):
        errors["public_host"] = ["An IP address or a DNS name, without http:// or a port (e.g. 203.0.113.5)."]
    low, high = port_range_start, port_range_end
    if not PORT_MIN <= low <= PORT_MAX or not PORT_MIN <= high <= PORT_MAX:
        errors["port_range_start"] = [f"Ports must be between {PORT_MIN} and {PORT_MAX}."]
    elif high < low:
        errors["port_range_end"] = ["The end of the range must not be below its start."]
    elif high - low + 1 > PORT_RANGE_MAX:
        errors["port_range_end"] = [f"At most {PORT_RANGE_MAX:,} ports."]
    _raise_if(errors)
    Node.objects.filter(pk=node.pk).update(
        public_host=host, port_range_start=low, port_range_end=high, updated_at=timezone.now()
    )
    node.public_host, node.port_range_start, node.port_range_end = host, low, high
    return node
