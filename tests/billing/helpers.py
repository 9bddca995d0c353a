"""Shared helpers for billing tests: open a funded lease, build heartbeat reports."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from billing.models import LeaseAccount, LeaseAccountStatus
from billing.services.settlement import lease_account_open
from billing.services.wallet import escrow_hold, wallet_credit
from tests.factories import CustomerFactory, ProviderFactory


def heartbeats_until(*, node_id: int, until: Any) -> None:
    """The node heartbeated every few seconds up to `until`: the broker clock of its open leases reads `until`
    (what `lease_clock_advance` would have done on each heartbeat), without replaying them one by one."""
    LeaseAccount.objects.filter(node_id=node_id, status=LeaseAccountStatus.OPEN).update(seen_until=until)


@dataclass
class OpenLease:
    account: LeaseAccount
    customer: Any
    provider: Any
    hold: int


def open_lease(
    *,
    lease_ref: int,
    price_micros: int = 3_600_000,
    gpu_count: int = 1,
    hold: int = 10_000_000,
    node_id: int = 1,
    customer: Any = None,
    provider: Any = None,
    topup: int | None = None,
    observed_s: int = 86_400,
) -> OpenLease:
    """A lease billing opened `observed_s` ago whose node has heartbeated up to now (the broker clock, THE RULE):
    usage up to gpu_count × observed_s GPU-seconds is billable; more is capped at what the broker observed."""
    customer = customer or CustomerFactory().user
    provider = provider or ProviderFactory().user
    wallet_credit(user=customer, amount_micros=topup or hold, key=f"topup:{lease_ref}")
    escrow_hold(user=customer, amount_micros=hold, key=f"hold:{lease_ref}")
    account = lease_account_open(
        lease_ref=lease_ref,
        job_ref=lease_ref * 10,
        customer_user=customer,
        provider_user=provider,
        node_id=node_id,
        price_micros=price_micros,
        gpu_count=gpu_count,
        hold_micros=hold,
        active_from=timezone.now() - timedelta(seconds=observed_s),
    )
    heartbeats_until(node_id=node_id, until=timezone.now())
    account.refresh_from_db()
    return OpenLease(account=account, customer=customer, provider=provider, hold=hold)


def report(lease: int, seq: int, gpu_seconds: float | int | str = 15, **extra: Any) -> dict[str, Any]:
    return {
        "lease_id": lease,
        "seq": seq,
        "gpu_seconds": gpu_seconds,
        "utilisation": 0.9,
        "interval_start": "2026-11-27T10:00:00Z",
        "interval_end": "2026-11-27T10:00:15Z",
        "state": "running",
        **extra,
    }
