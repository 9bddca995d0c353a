"""The demo market that `make run` seeds and keeps online (demo only: never in production settings).

`demo_seed` is idempotent: what exists is left alone, so a second run changes nothing. It creates the demo
logins (all with password `rigshift-demo`), a wallet credit for the customer (a fixed idempotency key),
and ~36 verified, priced, listed nodes of AI-grade GPUs across regions, owned by a few demo providers,
through the same services the portals use.

Demo agent tokens (DEMO ONLY). A real node's agent token is random, shown once and stored hashed. The
demo agents must find their tokens again after a restart without any raw token in the database, so a
demo node's token is derived: HMAC-SHA256(SECRET_KEY, "rigshift-demo-node:<node name>"); the node stores
its SHA-256 hash like any other. Anyone with SECRET_KEY can compute these tokens, which is why the demo
seed refuses to run with DJANGO_DEBUG off (unless forced) and only the nodes it creates get such tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from rigshift_agent.challenge import solve
from rigshift_agent.detect import simulate, simulated_benchmark, simulated_challenge_tflops

from billing.services.wallet import wallet_credit
from broker.services.customers import customer_signup
from common.money import to_micros
from common.tokens import token_hash
from marketplace.models import Customer, Lender, Node, NodeUptime, Provider
from marketplace.services.challenge import (
    challenge_spec,
    node_challenge_commit,
    node_challenge_deliver,
    node_challenge_reveal,
)
from marketplace.services.gpu_names import match_slug
from marketplace.services.nodes import node_register
from marketplace.services.providers import provider_payout_account_connect, provider_signup
from marketplace.services.reliability import node_reliability_refresh
from marketplace.services.verification import node_agent_report_apply, node_verify

DEMO_PASSWORD = "rigshift-demo"
DEMO_WALLET_MICROS = 500_000_000  # $500
DEMO_WALLET_KEY = "demo-seed:wallet:demo-customer"
DEMO_TOKEN_PREFIX = "rsn_demo_"
RECENT_UPTIME_DAYS = 30
HISTORY_DAYS = 120  # uptime and market history (demo/history.py writes the settled usage)


@dataclass(frozen=True)
class DemoProvider:
    username: str
    company: str
    contact: str
    country: str
    currency: str


@dataclass(frozen=True)
class DemoNode:
    name: str
    provider: str
    region: str
    country: str
    profile: str  # rigshift-agent --simulate profile: COUNTxMODEL
    price: str  # USD per GPU-hour


PROVIDERS = (
    DemoProvider("demo-provider", "Lone Star Hash LLC", "Dana Miner", "US", "USD"),
    DemoProvider("demo-provider-eu", "Nordic Hash AB", "Erik Lund", "SE", "EUR"),
    DemoProvider("demo-provider-asia", "Kanto Compute KK", "Aiko Sato", "JP", "USD"),
    DemoProvider("demo-provider-south", "Andes Hashing SpA", "Lucia Rojas", "CL", "USD"),
)

NODES = (
    DemoNode("us-tx-4090-a", "demo-provider", "us", "US", "8xRTX4090", "0.44"),
    DemoNode("us-tx-4090-b", "demo-provider", "us", "US", "8xRTX4090", "0.42"),
    DemoNode("us-ca-4090", "demo-provider", "us", "US", "4xRTX4090", "0.48"),
    DemoNode("us-va-h100-a", "demo-provider", "us", "US", "8xH100-SXM", "2.49"),
    DemoNode("us-va-h100-b", "demo-provider", "us", "US", "8xH100-SXM", "2.39"),
    DemoNode("us-or-a100", "demo-provider", "us", "US", "8xA100-80GB", "1.49"),
    DemoNode("us-oh-3090-a", "demo-provider", "us", "US", "6xRTX3090", "0.24"),
    DemoNode("us-oh-3090-b", "demo-provider", "us", "US", "6xRTX3090", "0.22"),
    DemoNode("us-ga-l40s", "demo-provider", "us", "US", "4xL40S", "0.95"),
    DemoNode("us-wa-a6000", "demo-provider", "us", "US", "4xRTXA6000", "0.55"),
    DemoNode("us-tx-5090", "demo-provider", "us", "US", "4xRTX5090", "0.69"),
    DemoNode("us-ny-l4", "demo-provider", "us", "US", "8xL4", "0.32"),
    DemoNode("us-tx-mi300x", "demo-provider", "us", "US", "8xMI300X", "2.29"),
    DemoNode("eu-de-4090-a", "demo-provider-eu", "eu", "DE", "8xRTX4090", "0.46"),
    DemoNode("eu-de-4090-b", "demo-provider-eu", "eu", "DE", "2xRTX4090", "0.50"),
    DemoNode("eu-se-h100", "demo-provider-eu", "eu", "SE", "8xH100-SXM", "2.59"),
    DemoNode("eu-fi-a100", "demo-provider-eu", "eu", "FI", "4xA100-80GB", "1.59"),
    DemoNode("eu-nl-a100-40", "demo-provider-eu", "eu", "NL", "8xA100-40GB", "0.99"),
    DemoNode("eu-no-3090", "demo-provider-eu", "eu", "NO", "8xRTX3090", "0.21"),
    DemoNode("eu-pl-3090", "demo-provider-eu", "eu", "PL", "4xRTX3090", "0.23"),
    DemoNode("eu-fr-l40s", "demo-provider-eu", "eu", "FR", "8xL40S", "1.05"),
    DemoNode("eu-is-h200", "demo-provider-eu", "eu", "IS", "8xH200", "3.49"),
    DemoNode("eu-de-a40", "demo-provider-eu", "eu", "DE", "4xA40", "0.49"),
    DemoNode("asia-jp-h100", "demo-provider-asia", "asia", "JP", "8xH100-SXM", "2.79"),
    DemoNode("asia-jp-4090", "demo-provider-asia", "asia", "JP", "8xRTX4090", "0.52"),
    DemoNode("asia-kr-a100", "demo-provider-asia", "asia", "KR", "8xA100-80GB", "1.69"),
    DemoNode("asia-sg-l40s", "demo-provider-asia", "asia", "SG", "4xL40S", "1.10"),
    DemoNode("asia-tw-3090", "demo-provider-asia", "asia", "TW", "8xRTX3090", "0.26"),
    DemoNode("asia-in-a6000", "demo-provider-asia", "asia", "IN", "2xRTXA6000", "0.58"),
    DemoNode("asia-hk-4090", "demo-provider-asia", "asia", "HK", "4xRTX4090", "0.49"),
    DemoNode("sa-br-4090", "demo-provider-south", "sa", "BR", "4xRTX4090", "0.45"),
    DemoNode("sa-ar-3090", "demo-provider-south", "sa", "AR", "6xRTX3090", "0.19"),
    DemoNode("sa-cl-a5000", "demo-provider-south", "sa", "CL", "4xRTXA5000", "0.29"),
    DemoNode("oc-au-a100", "demo-provider-south", "oceania", "AU", "4xA100-80GB", "1.79"),
    DemoNode("oc-nz-4090", "demo-provider-south", "oceania", "NZ", "2xRTX4090", "0.55"),
    DemoNode("af-za-3090", "demo-provider-south", "africa", "ZA", "4xRTX3090", "0.27"),
)
NODES_BY_NAME = {node.name: node for node in NODES}


def demo_node_token(*, node_name: str) -> str:
    """The agent token of a demo node (DEMO ONLY, see the module docstring)."""
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"rigshift-demo-node:{node_name}".encode(), hashlib.sha256
    ).hexdigest()
    return f"{DEMO_TOKEN_PREFIX}{digest[:40]}"


def _user(*, username: str, email: str, **extra: Any) -> tuple[User, bool]:
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, False
    return User.objects.create_user(username=username, email=email, password=DEMO_PASSWORD, **extra), True


def _provider(spec: DemoProvider) -> Provider:
    existing = Provider.objects.filter(user__username=spec.username).first()
    if existing is not None:
        return existing
    provider, _token = provider_signup(
        username=spec.username,
        password=DEMO_PASSWORD,
        email=f"{spec.username}@demo.rigshift.test",
        company=spec.company,
        contact_name=spec.contact,
        country=spec.country,
        payout_currency=spec.currency,
    )
    return provider_payout_account_connect(provider=provider)


def _node_report(spec: DemoNode) -> dict[str, Any]:
    """The hardware report the demo node's simulated agent sends (so the seed can verify the node)."""
    hardware = simulate(spec.profile)
    return {
        "gpus": [gpu.report() for gpu in hardware.gpus],
        "driver_version": hardware.driver_version,
        "cuda_version": hardware.cuda_version,
        "cpu_cores": hardware.cpu_cores,
        "ram_gb": hardware.ram_gb,
        "disk_gb": hardware.disk_gb,
        "inet_down_mbps": hardware.inet_down_mbps,
        "inet_up_mbps": hardware.inet_up_mbps,
        "benchmark": simulated_benchmark(spec.profile),
        "agent_version": "demo-seed",
    }


def _history(node: Node, spec: DemoNode) -> None:
    """HISTORY_DAYS of uptime, so reliability (and the min-reliability filter) means something from the start."""
    now = timezone.now()
    start = (now - timedelta(days=HISTORY_DAYS)).replace(minute=0, second=0, microsecond=0)
    # 95.0%–99.9% uptime, fixed per node name.
    target = 0.95 + (zlib.crc32(spec.name.encode()) % 50) / 1000
    # The last RECENT_UPTIME_DAYS in hourly buckets (what node pages chart); before that one bucket a day (what
    # reliability at an earlier simulated time, demo/history.py, sums), which keeps the seed fast.
    recent = now - timedelta(days=RECENT_UPTIME_DAYS)
    days = [start + timedelta(days=d) for d in range(HISTORY_DAYS) if start + timedelta(days=d + 1) <= recent]
    hourly_from = days[-1] + timedelta(days=1)
    hours = [start + timedelta(hours=h) for h in range(HISTORY_DAYS * 24) if start + timedelta(hours=h) >= hourly_from]
    NodeUptime.objects.bulk_create(
        [NodeUptime(node=node, hour=day, up_seconds=round(86400 * target)) for day in days]
        + [NodeUptime(node=node, hour=hour, up_seconds=round(3600 * target)) for hour in hours],
        ignore_conflicts=True,
    )
    Node.objects.filter(pk=node.pk).update(created_at=start)
    node.created_at = start
    node_reliability_refresh(node=node, now=now)


def _answer_challenge(node: Node, spec: DemoNode) -> None:
    """Answer the node's compute challenge as its simulated agent would (correct, at a simulated speed)."""
    challenge = node_challenge_deliver(node=node)
    if challenge is None:
        return
    work = challenge_spec(challenge)
    solution = solve(work, simulated_tflops=simulated_challenge_tflops(spec.profile))
    answered = node_challenge_commit(
        node=node,
        challenge_id=challenge.pk,
        digest=solution.digest,
        compute_s=solution.compute_s,
        backend=solution.backend,
    )
    node_challenge_reveal(node=node, challenge_id=challenge.pk, rows=solution.reveal(work, answered.picks))


def _node(spec: DemoNode, *, provider: Provider, admin: User) -> tuple[Node, bool]:
    existing = Node.objects.filter(provider=provider, name=spec.name).first()
    if existing is not None:
        return existing, False
    report = _node_report(spec)
    first = report["gpus"][0]
    slug = match_slug(f"{first['name']} {round(first['vram_gb'])}GB") or match_slug(first["name"])
    if slug is None:
        raise ValueError(f"demo node {spec.name}: {first['name']!r} is not in the GPU catalog")
    price = to_micros(amount=spec.price)
    with transaction.atomic():
        node, _raw = node_register(
            provider=provider,
            name=spec.name,
            region=spec.region,
            country=spec.country,
            gpu_model_slug=slug,
            gpu_count=len(report["gpus"]),
            cpu_cores=report["cpu_cores"],
            ram_gb=report["ram_gb"],
            disk_gb=report["disk_gb"],
            inet_down_mbps=report["inet_down_mbps"],
            inet_up_mbps=report["inet_up_mbps"],
            price_micros=price,
            min_bid_micros=price * 6 // 10,
            listed=True,
        )
        raw = demo_node_token(node_name=spec.name)  # DEMO ONLY: replaces the random token
        Node.objects.filter(pk=node.pk).update(token_prefix=raw[:12], token_hash=token_hash(raw=raw))
        _history(node, spec)
        node_agent_report_apply(node=node, report=report)  # issues the registration compute challenge
        _answer_challenge(node, spec)
        node_verify(node=node, by=admin)
    return node, True


@dataclass
class SeedResult:
    created: list[str]
    nodes: int


def demo_seed(*, history: bool = True) -> SeedResult:
    """Create whatever of the demo market is missing; a second run changes nothing. With `history`, also its months
    of settled usage and financing (demo/history.py)."""
    created: list[str] = []
    admin, new = _user(username="admin", email="admin@demo.rigshift.test", is_staff=True, is_superuser=True)
    if new:
        created.append("admin")
    providers = {}
    for spec in PROVIDERS:
        before = Provider.objects.filter(user__username=spec.username).exists()
        providers[spec.username] = _provider(spec)
        if not before:
            created.append(spec.username)
    if not Customer.objects.filter(user__username="demo-customer").exists():
        customer_signup(
            username="demo-customer",
            password=DEMO_PASSWORD,
            email="demo-customer@demo.rigshift.test",
            company="Demo AI Lab",
        )
        created.append("demo-customer")
    customer_user = User.objects.get(username="demo-customer")
    wallet_credit(user=customer_user, amount_micros=DEMO_WALLET_MICROS, key=DEMO_WALLET_KEY, memo="Demo credit")
    lender_user, new = _user(username="demo-lender", email="demo-lender@demo.rigshift.test")
    if not Lender.objects.filter(user=lender_user).exists():
        Lender.objects.create(user=lender_user, name="Demo Capital Partners")
        created.append("demo-lender")
    for node_spec in NODES:
        _node_obj, new = _node(node_spec, provider=providers[node_spec.provider], admin=admin)
        if new:
            created.append(f"node:{node_spec.name}")
    from demo.history import demo_history_seed

    if history and demo_history_seed(admin=admin, lender=lender_user, node_names=[n.name for n in NODES]):
        created.append("history")
    return SeedResult(created=created, nodes=Node.objects.filter(name__in=NODES_BY_NAME).count())


def demo_fleet() -> list[dict[str, str]]:
    """The demo nodes whose token is the derived one (for runstack): name, agent token, simulate profile, and
    a state file name tied to this very node row, so a re-created database never meets a stale agent state."""
    fleet = []
    for node in Node.objects.filter(name__in=NODES_BY_NAME, token_revoked_at__isnull=True).order_by("pk"):
        raw = demo_node_token(node_name=node.name)
        if node.token_hash == token_hash(raw=raw):
            fleet.append(
                {
                    "name": node.name,
                    "token": raw,
                    "profile": NODES_BY_NAME[node.name].profile,
                    "state_file": f"{node.name}-{node.pk}-{node.created_at.timestamp():.0f}.json",
                }
            )
    return fleet
