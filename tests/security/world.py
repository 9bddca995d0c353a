"""The world the security tests run against: two tenants of each kind, a lender, staff, and A's objects."""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from billing.models import Invoice, InvoiceKind
from broker.models import Job, MatchRound, PriceOffer, SshKey
from common.models import ApiToken
from common.services import api_token_create
from financing.models import Advance, AdvanceApplication, ContractDemand
from marketplace.models import FleetAssessment, Node
from marketplace.services.assessment import fleet_assess
from marketplace.services.nodes import node_token_rotate
from tests.factories import (
    AdvanceApplicationFactory,
    AdvanceFactory,
    CustomerFactory,
    GPUModelFactory,
    JobFactory,
    LenderFactory,
    NodeFactory,
    ProviderFactory,
    UserFactory,
)

ROLES = ("anon", "provider_a", "provider_b", "customer_a", "customer_b", "lender", "node_a", "staff")


@dataclass
class World:
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # role -> raw bearer token
    node_a: Node | None = None
    node_b: Node | None = None
    job_a: Job | None = None
    assessment_a: FleetAssessment | None = None
    invoice_a: Invoice | None = None
    api_token_a: ApiToken | None = None
    round: MatchRound | None = None
    application_a: AdvanceApplication | None = None
    advance_a: Advance | None = None
    demand_a: ContractDemand | None = None
    ssh_key_a: SshKey | None = None
    offer_a: PriceOffer | None = None

    def kwargs(self) -> dict[str, Any]:
        """Values for URL parameters: always A's objects (or the shared catalog)."""
        assert self.node_a and self.job_a and self.assessment_a and self.invoice_a and self.api_token_a and self.round
        return {
            "node_id": self.node_a.pk,
            "job_id": self.job_a.pk,
            "assessment_id": self.assessment_a.pk,
            "invoice_id": self.invoice_a.pk,
            "token_id": self.api_token_a.pk,
            "round_id": self.round.pk,
            "application_id": self.application_a.pk if self.application_a else 0,
            "advance_id": self.advance_a.pk if self.advance_a else 0,
            "demand_id": self.demand_a.pk if self.demand_a else 0,
            "offer_id": self.offer_a.pk if self.offer_a else 0,
            "slug": "rtx-4090",
            "key_id": self.ssh_key_a.pk if self.ssh_key_a else 0,
            "filename": "not-the-agent.whl",
            "endpoint_id": 999_999,
        }

    def client(self, role: str, *, enforce_csrf: bool = False) -> Client:
        """Pages get the role's session; APIs its bearer token (the node role has only its node token)."""
        client = Client(enforce_csrf_checks=enforce_csrf)
        if role == "anon":
            return client
        if role != "node_a":
            client.force_login(self.users[role])
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {self.tokens[role]}"
        return client


def world_build() -> World:
    world = World()
    provider_a: Any = ProviderFactory()
    provider_b: Any = ProviderFactory()
    customer_a: Any = CustomerFactory()
    customer_b: Any = CustomerFactory()
    lender: Any = LenderFactory()
    staff: Any = UserFactory(is_staff=True)
    world.users = {
        "provider_a": provider_a.user,
        "provider_b": provider_b.user,
        "customer_a": customer_a.user,
        "customer_b": customer_b.user,
        "lender": lender.user,
        "staff": staff,
    }
    for role, user in world.users.items():
        token, raw = api_token_create(user=user)
        world.tokens[role] = raw
        if role == "customer_a":
            world.api_token_a = token
    node_a: Any = NodeFactory(provider=provider_a)
    node_b: Any = NodeFactory(provider=provider_b)
    world.node_a, world.node_b = node_a, node_b
    world.tokens["node_a"] = node_token_rotate(node=node_a)
    world.job_a = cast(Job, JobFactory(customer=customer_a, name="a-job", gpu_count=1, duration_seconds=600))
    world.ssh_key_a = SshKey.objects.create(
        customer=customer_a, name="a", public_key="ssh-ed25519 AAAA", fingerprint="x"
    )
    # staff's below-ask offer to provider A for customer A's pending job
    world.offer_a = PriceOffer.objects.create(job=world.job_a, node=node_a, price_micros=1, floor_micros=2)
    gpu_model = GPUModelFactory()
    world.assessment_a = fleet_assess(provider=provider_a, lines=[("RTX 4090", 4), ("RX 580 8GB", 8)])
    now = timezone.now()
    world.invoice_a = Invoice.objects.create(
        customer=customer_a.user,
        number=f"INV-A-{customer_a.pk}",
        kind=InvoiceKind.ON_DEMAND,
        period_start=now - timedelta(days=1),
        period_end=now,
    )
    world.round = MatchRound.objects.create(shard="default", started_at=now, finished_at=now)
    _financing_build(world, provider_a.user, gpu_model)
    world.demand_a = ContractDemand.objects.create(
        customer=customer_a.user,
        gpu_model_id=gpu_model.pk,
        gpu_count=2,
        term_months=12,
        list_price_micros=400_000,
        discount_bps=2500,
        monthly_micros=438_000_000,
        delivery_days=45,
    )
    return world


def _financing_build(world: World, provider_user: User, gpu_model: Any) -> None:
    """Provider A's advance application (approved) and its advance, still funding."""
    now = timezone.now()
    world.application_a = cast(
        AdvanceApplication, AdvanceApplicationFactory(provider=provider_user, gpu_model=gpu_model, gpu_count=2)
    )
    world.advance_a = cast(Advance, AdvanceFactory(application=world.application_a, approved_at=now))
