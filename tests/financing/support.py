"""Helpers for the financing tests: real settlements as earnings, lenders with capital, staff, a clock."""

import itertools
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User

from billing.models import UsageRecord
from billing.services.metering import usage_ingest
from billing.services.settlement import lease_settle, lease_settle_final
from financing.services.lenders import lender_capital_commit, lender_preference_set
from tests.billing.helpers import open_lease
from tests.factories import CustomerFactory, LenderFactory, UserFactory

PRICE = 3_600_000  # $3.60 per GPU-hour: one GPU-second costs exactly $0.001 = 1,000 micros
_refs = itertools.count(900_000)


def earn(*, provider_user: User, node_id: int, charge_micros: int, customer: Any = None, close: bool = True) -> int:
    """Charge a customer `charge_micros` for usage on the provider's node through the real settlement service.

    Returns the lease ref. The charge is exact (whole GPU-seconds at PRICE).
    """
    assert charge_micros % 1000 == 0
    ref = next(_refs)
    customer = customer or CustomerFactory().user
    lease = open_lease(
        lease_ref=ref,
        price_micros=PRICE,
        hold=charge_micros,
        node_id=node_id,
        customer=customer,
        provider=provider_user,
        observed_s=max(86_400, charge_micros // 1000 + 1),  # the broker saw it run long enough to earn this
    )
    seconds = charge_micros // 1000
    reports, seq = [], 0
    while seconds > 0:
        chunk = min(seconds, 5_000_000)
        seq += 1
        reports.append({"lease_id": ref, "seq": seq, "gpu_seconds": chunk, "state": "running"})
        seconds -= chunk
    usage_ingest(node_id=node_id, reports=reports)
    lease_settle(lease_ref=ref)
    if close:
        lease_settle_final(
            lease_ref=ref,
            job_ref=lease.account.job_ref,
            customer_user=customer,
            release_unused_hold_micros=0,
            failed=False,
        )
    assert not UsageRecord.objects.filter(lease_ref=ref, status="pending").exists()
    return ref


def season(node: Any, *, days: int = 31) -> Any:
    """Backdate a node's registration so that its earnings count (underwriting's seasoning period is 30 days)."""
    from datetime import timedelta

    from django.utils import timezone

    from marketplace.models import Node

    Node.objects.filter(pk=node.pk).update(created_at=timezone.now() - timedelta(days=days))
    node.refresh_from_db()
    return node


def lender(*, capital_micros: int, mode: str = "hand_picked", **prefs: Any) -> Any:
    user = LenderFactory().user
    lender_preference_set(
        lender_user=user,
        mode=mode,
        max_per_advance_micros=prefs.get("max_per_advance_micros", 0),
        tiers=prefs.get("tiers", []),
        max_payoff_months=prefs.get("max_payoff_months", 24),
    )
    if capital_micros:
        lender_capital_commit(lender_user=user, amount_micros=capital_micros)
    return user


def staff_user() -> Any:
    return UserFactory(is_staff=True)


class Clock:
    """A settable `timezone.now` for simulated time (monkeypatched onto django.utils.timezone)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def deliver_node(*, provider: Any, slug: str, count: int, staff: Any, name: str = "new-rig") -> Any:
    """Register a node through the services, report matching hardware, pass the compute challenge and have staff
    verify it (the `node_verified` signal runs on commit, as in production). Returns the node."""
    from django.db import transaction

    from marketplace.models import GPUModel
    from marketplace.services.nodes import node_register
    from marketplace.services.verification import node_agent_report_apply, node_verify
    from tests.challenge_helpers import pass_challenge

    model = GPUModel.objects.get(slug=slug)
    node, _token = node_register(
        provider=provider,
        name=name,
        region="eu",
        country="DE",
        gpu_model_slug=slug,
        gpu_count=count,
        cpu_cores=32,
        ram_gb=128,
        disk_gb=2000,
        inet_down_mbps=1000,
        inet_up_mbps=500,
        price_micros=300_000,
        min_bid_micros=200_000,
        listed=True,
    )
    gpus = [{"index": i, "name": f"NVIDIA {model.name}", "vram_gb": float(model.vram_gb)} for i in range(count)]
    node_agent_report_apply(node=node, report={"gpus": gpus, "cpu_cores": 32, "ram_gb": 128, "disk_gb": 2000})
    pass_challenge(node)
    with transaction.atomic():
        node_verify(node=node, by=staff)
    return node
