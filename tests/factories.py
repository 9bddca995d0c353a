"""factory_boy factories shared by the suite: accounts (users, providers, customers, lenders), the catalog and
nodes, jobs and leases, advance applications and advances. Each makes a valid row with the fewest decisions;
pass only what a test is about (`JobFactory(gpu_count=8)`, `LeaseFactory(job=job, node=node, gpu_slots=[0, 1])`).
"""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth.models import User
from django.utils import timezone

from broker.models import Job, Lease, LeaseSlot
from financing.models import Advance, AdvanceApplication, ApplicationStatus
from marketplace.models import Customer, GPUModel, Lender, Node, NodeStatus, Provider, Tier

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")

    @factory.post_generation
    def password(obj: Any, create: bool, extracted: str | None, **kwargs: Any) -> None:
        obj.set_password(extracted or PASSWORD)
        if create:
            obj.save(update_fields=["password"])


class GPUModelFactory(factory.django.DjangoModelFactory[GPUModel]):
    class Meta:
        model = GPUModel
        django_get_or_create = ("slug",)

    slug = "rtx-4090"
    name = "GeForce RTX 4090"
    vendor = "nvidia"
    architecture = "Ada Lovelace"
    vram_gb = Decimal("24")
    mem_bandwidth_gbs = 1008
    fp16_tflops = Decimal("165.2")
    fp32_tflops = Decimal("82.6")
    compute_capability = Decimal("8.9")
    tensor_cores = True
    framework_support = True
    tdp_w = 450
    launch_year = 2022
    launch_price_usd = 1599
    tier = Tier.FINE_TUNING
    tier_reason = "24 GB with tensor cores"
    reference_price_micros = 400_000


class ProviderFactory(factory.django.DjangoModelFactory[Provider]):
    class Meta:
        model = Provider

    user = factory.SubFactory(UserFactory)
    company = factory.Sequence(lambda n: f"Hashfarm {n}")
    contact_name = "Pat Miner"
    country = "DE"


class CustomerFactory(factory.django.DjangoModelFactory[Customer]):
    class Meta:
        model = Customer

    user = factory.SubFactory(UserFactory)
    company = factory.Sequence(lambda n: f"AI Lab {n}")


class LenderFactory(factory.django.DjangoModelFactory[Lender]):
    class Meta:
        model = Lender

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Lender {n}")


class NodeFactory(factory.django.DjangoModelFactory[Node]):
    class Meta:
        model = Node

    provider = factory.SubFactory(ProviderFactory)
    name = factory.Sequence(lambda n: f"node-{n}")
    region = "eu"
    country = "DE"
    gpu_model = factory.SubFactory(GPUModelFactory)
    gpu_count = 4
    cpu_cores = 32
    ram_gb = 128
    disk_gb = 2000
    inet_down_mbps = 1000
    inet_up_mbps = 500
    price_micros = 400_000
    min_bid_micros = 200_000
    listed = True
    verified = True
    status = NodeStatus.ONLINE
    reliability = 0.99


class JobFactory(factory.django.DjangoModelFactory[Job]):
    """A pending on-demand job (1 GPU for an hour, any model), as a booking leaves it before matching."""

    class Meta:
        model = Job
        skip_postgeneration_save = True

    customer = factory.SubFactory(CustomerFactory)
    name = factory.Sequence(lambda n: f"job-{n}")
    gpu_count = 1
    image = "img"
    duration_seconds = 3600

    @factory.post_generation
    def gpu_models(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            obj.gpu_models.set(extracted)


class LeaseFactory(factory.django.DjangoModelFactory[Lease]):
    """A reserved lease of `gpu_slots` on `node` for `job`, starting now for an hour at the node's price.

    `slots=True` also writes its LeaseSlot rows (what the matcher does; they hold the GPUs for other bookings)."""

    class Meta:
        model = Lease
        skip_postgeneration_save = True

    job = factory.SubFactory(JobFactory)
    node = factory.SubFactory(NodeFactory)
    gpu_slots = factory.LazyAttribute(lambda lease: list(range(lease.job.gpu_count)))
    gpu_count = factory.LazyAttribute(lambda lease: len(lease.gpu_slots))
    price_micros = factory.LazyAttribute(lambda lease: lease.node.price_micros)
    starts_at = factory.LazyFunction(timezone.now)
    ends_at = factory.LazyAttribute(lambda lease: lease.starts_at + timedelta(hours=1))

    @factory.post_generation
    def slots(obj: Any, create: bool, extracted: bool | None, **kwargs: Any) -> None:
        if create and extracted:
            LeaseSlot.objects.bulk_create(
                LeaseSlot(lease=obj, node=obj.node, slot=s, starts_at=obj.starts_at, ends_at=obj.ends_at)
                for s in obj.gpu_slots
            )


class AdvanceApplicationFactory(factory.django.DjangoModelFactory[AdvanceApplication]):
    """An approved application for 2 GPUs at $1,600 each: 20% withheld, a 10% fee."""

    class Meta:
        model = AdvanceApplication

    provider = factory.LazyAttribute(lambda _: ProviderFactory().user)
    gpu_model = factory.SubFactory(GPUModelFactory)
    gpu_count = 2
    unit_cost_micros = 1_600_000_000
    requested_micros = factory.LazyAttribute(lambda a: a.unit_cost_micros * a.gpu_count)
    status = ApplicationStatus.APPROVED
    offered_gpu_count = factory.LazyAttribute(lambda a: a.gpu_count)
    principal_micros = factory.LazyAttribute(lambda a: a.unit_cost_micros * a.offered_gpu_count)
    fee_micros = factory.LazyAttribute(lambda a: a.principal_micros // 10)
    withhold_bps = 2000
    rules_version = "test"


class AdvanceFactory(factory.django.DjangoModelFactory[Advance]):
    """The advance of an approved application (still funding), on the application's terms."""

    class Meta:
        model = Advance

    application = factory.SubFactory(AdvanceApplicationFactory)
    provider = factory.SelfAttribute("application.provider")
    gpu_model = factory.SelfAttribute("application.gpu_model")
    gpu_count = factory.SelfAttribute("application.offered_gpu_count")
    principal_micros = factory.SelfAttribute("application.principal_micros")
    fee_micros = factory.SelfAttribute("application.fee_micros")
    base_withhold_bps = factory.SelfAttribute("application.withhold_bps")
    withhold_bps = factory.SelfAttribute("application.withhold_bps")
    expected_payoff_months = Decimal("6.0")
    min_progress_micros = 100_000_000
    approved_at = factory.LazyFunction(timezone.now)
