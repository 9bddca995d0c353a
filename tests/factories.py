"""factory_boy factories shared by the suite."""

from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth.models import User

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
