"""Helpers for the booking tests: catalog GPUs, nodes, funded wallets, leases."""

from datetime import timedelta
from typing import Any, cast

from django.utils import timezone

from billing.services.wallet import wallet_credit
from broker.models import Lease, LeaseState
from marketplace.models import Customer, GPUModel, Node
from tests.factories import GPUModelFactory, JobFactory, LeaseFactory, NodeFactory


def gpu(slug: str) -> GPUModel:
    found = GPUModel.objects.filter(slug=slug).first()
    return found if found is not None else cast(GPUModel, GPUModelFactory(slug=slug))


def node(**kwargs: Any) -> Node:
    slug = kwargs.pop("gpu", "rtx-4090")
    return cast(Node, NodeFactory(gpu_model=gpu(slug), **kwargs))


def fund(customer: Customer, dollars: int, key: str = "test-fund") -> None:
    wallet_credit(user=customer.user, amount_micros=dollars * 1_000_000, key=f"{key}:{customer.pk}")


def lease_on(
    node_obj: Node, customer: Customer, gpus: int, *, hours: float = 2, state: str = LeaseState.ACTIVE
) -> Lease:
    now = timezone.now()
    job = JobFactory(customer=customer, name="other", gpu_count=gpus, state="running")
    return cast(
        Lease,
        LeaseFactory(
            job=job,
            node=node_obj,
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=hours),
            state=state,
        ),
    )
