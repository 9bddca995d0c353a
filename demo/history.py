"""The demo market's history: four months of settled usage, and financing in it, written through the real services in
simulated time (demo only).

While `demo_history_seed` runs, `django.utils.timezone.now` is a clock the seed moves forward from HISTORY_DAYS ago to
now (every service, and every `auto_now_add`, reads it), Celery tasks run inline and no matching round is asked for
(each replayed job is leased on its node directly). Fortnight by fortnight, every demo node runs one job of one of four
demo AI labs (booked, leased, reported by the node's agent and settled: broker/services/replay.py), so settlements, the
lenders' withholding and the providers' payables are those the product computed. In that time:

  * day 42: demo-provider-eu applies for RTX 4090s on its earnings; staff approve; demo-lender funds it (the advance
    then repays from each settlement: demo-lender's repaying portfolio);
  * day 98: demo-provider-asia applies; staff approve; it waits for funding (demo-lender's offers to fund);
  * now: demo-provider assesses its mining farm (400 RX 580, 300 GTX 1070, 200 RTX 3060 Ti, 60 RTX 3090) and applies
    from the assessment's upgrade path: a real offer, in the staff queue; a demo lab posts reserved contracts no
    provider has capacity for yet (open demand a new provider can take).

Idempotent: the history is written once (a second run finds its first job and changes nothing).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

from celery import current_app
from django.contrib.auth.models import User
from django.utils import timezone

import broker.dispatch
from billing.services.wallet import wallet_credit
from broker.models import Job, Lease
from broker.services.customers import customer_signup
from broker.services.replay import job_run_finish, job_run_start
from common.money import MICROS
from demo.seed import DEMO_PASSWORD, HISTORY_DAYS
from financing.models import AdvanceApplication
from financing.services.advances import advances_review
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.demand import contract_demand_post
from financing.services.lenders import advance_fund, lender_capital_commit, lender_preference_set
from marketplace.models import Customer, Node, Provider
from marketplace.services.assessment import fleet_assess
from marketplace.services.reliability import node_reliability_refresh

PERIOD_DAYS = 14  # one replayed job per node per fortnight (coarse, but each one settled like any other)
PERIODS = HISTORY_DAYS // PERIOD_DAYS
LABS = (
    ("demo-lab-vision", "Vision Lab"),
    ("demo-lab-speech", "Speech Lab"),
    ("demo-lab-llm", "LLM Lab"),
    ("demo-lab-bio", "Bio Lab"),
)
LAB_WALLET_MICROS = 400_000 * MICROS
LENDER_CAPITAL_MICROS = 500_000 * MICROS
FUNDED_PERIOD = 3  # day 42
OPEN_PERIOD = 7  # day 98
MINING_FARM = (("RX 580 8GB", 400), ("GTX 1070", 300), ("RTX 3060 Ti", 200), ("RTX 3090", 60))
DEMAND = (("rtx-4090", 8, 12, 400_000), ("rtx-3090", 4, 12, 250_000))  # slug, GPUs, months, $/GPU-hour
FIRST_KEY = "demo-history:w0:"


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def _simulated(start: datetime) -> Iterator[_Clock]:
    """Simulated time, inline tasks, no matching rounds (see the module docstring)."""
    clock = _Clock(start)
    saved = (current_app.conf.task_always_eager, current_app.conf.task_eager_propagates)
    current_app.conf.task_always_eager, current_app.conf.task_eager_propagates = True, True
    try:
        with (
            mock.patch.object(timezone, "now", clock),
            mock.patch.object(broker.dispatch, "match_round_request", lambda shard="default": None),
        ):
            yield clock
    finally:
        current_app.conf.task_always_eager, current_app.conf.task_eager_propagates = saved


def _labs() -> list[Customer]:
    labs = []
    for username, company in LABS:
        customer = Customer.objects.filter(user__username=username).first()
        if customer is None:
            customer, _token = customer_signup(
                username=username, password=DEMO_PASSWORD, email=f"{username}@demo.rigshift.test", company=company
            )
        wallet_credit(user=customer.user, amount_micros=LAB_WALLET_MICROS, key=f"demo-seed:wallet:{username}")
        labs.append(customer)
    return labs


def _period(clock: _Clock, period: int, start: datetime, nodes: list[Node], labs: list[Customer]) -> None:
    """Each node runs one job on half to all of its GPUs for 3–6 days of the fortnight, for one of the labs."""
    clock.now = start
    leases: list[Lease] = []
    for i, node in enumerate(nodes):
        h = zlib.crc32(f"{node.name}:{period}".encode())
        gpus = max(1, node.gpu_count * (2 + h % 3) // 4)
        hours = 72 + h % 73
        lease = job_run_start(
            customer=labs[(i + period) % len(labs)],
            node=node,
            gpu_count=gpus,
            hours=hours,
            price_micros=node.price_micros,
            key=f"demo-history:w{period}:{node.name}",
        )
        if lease is not None:
            leases.append(lease)
    for lease in sorted(leases, key=lambda x: (x.ends_at, x.pk)):
        clock.now = lease.ends_at
        job_run_finish(lease=lease)
    advances_review(now=clock.now)  # the daily review (minimum progress, collateral), once a fortnight here


def _finance(*, provider: str, admin: User, lender: User | None) -> None:
    user = User.objects.get(username=provider)
    for node in Node.objects.filter(provider__user=user):
        node_reliability_refresh(node=node)
    app = advance_application_submit(provider_user=user, gpu_model_slug="rtx-4090", count=8)
    if app.status != "offered":
        raise RuntimeError(f"demo history: {provider} was not offered an advance: {app.decline_reasons}")
    advance = advance_application_approve(staff_user=admin, application_id=app.pk)
    if lender is not None:
        advance_fund(lender_user=lender, advance_id=advance.pk)


def _today(*, provider: Provider, labs: list[Customer]) -> None:
    """demo-provider assesses its mining farm and applies from the upgrade path; a lab posts open demand."""
    assessment = fleet_assess(provider=provider, lines=list(MINING_FARM))
    advance_application_submit(provider_user=provider.user, assessment_id=assessment.pk)
    for slug, gpus, months, price in DEMAND:
        contract_demand_post(
            customer_user=labs[0].user, gpu_model_slug=slug, gpu_count=gpus, term_months=months, price_micros=price
        )


def demo_history_seed(*, admin: User, lender: User, node_names: list[str]) -> bool:
    """Write the history once (False when it is there already)."""
    if Job.objects.filter(idempotency_key__startswith=FIRST_KEY).exists():
        return False
    now = timezone.now()
    start = (now - timedelta(days=HISTORY_DAYS)).replace(minute=0, second=0, microsecond=0)
    nodes = list(Node.objects.filter(name__in=node_names).select_related("gpu_model").order_by("pk"))
    with _simulated(start) as clock:
        labs = _labs()
        lender_preference_set(
            lender_user=lender, mode="hand_picked", max_per_advance_micros=0, tiers=[], max_payoff_months=36
        )
        lender_capital_commit(lender_user=lender, amount_micros=LENDER_CAPITAL_MICROS)
        for period in range(PERIODS):
            if period == FUNDED_PERIOD:
                _finance(provider="demo-provider-eu", admin=admin, lender=lender)
            if period == OPEN_PERIOD:
                _finance(provider="demo-provider-asia", admin=admin, lender=None)
            _period(clock, period, start + timedelta(days=PERIOD_DAYS * period), nodes, labs)
        clock.now = now
        for node in Node.objects.filter(pk__in=[n.pk for n in nodes]):
            node_reliability_refresh(node=node, now=now)
        _today(provider=Provider.objects.get(user__username="demo-provider"), labs=labs)
    return True


def demo_history_applications() -> int:
    return AdvanceApplication.objects.filter(provider__username__startswith="demo-provider").count()
