"""The market simulation loop: set the market up, then advance simulated time tick by tick.

Each tick (default 60 simulated seconds), in this order:

1. nodes fail (a crash: workloads die, heartbeats stop) or come back;
2. the agents that are due take one Runner step through the agent API: every `heartbeat_s`, and also at once
   when a lease was reserved for their node or a workload reached its lease end (a real agent polls every
   15 s; waking on those events keeps usage and starts as timely at a coarse tick);
3. customers cancel jobs that waited too long and book the jobs due (each booking triggers a matching round,
   as in production); a refused booking (402) makes the customer top up and try once more;
4. at a quarter of the run, the best-earning providers with mining fleets apply for upgrade financing;
   offers are approved by staff, funded by a lender, and the financed GPUs come online as a new node;
5. Celery beat's schedule runs in simulated time (matching rounds, lease expiry, settlement, offline sweep and
   failover, reliability, payouts);
6. the GPUs held per tier are sampled for the utilisation figures.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, Max, Sum
from django.test import override_settings
from rigshift_agent.detect import simulate, simulated_host

from billing.models import LeaseAccount
from billing.services.topups import topup_create
from broker.models import Job, JobState, Lease, LeaseState
from broker.services.customers import customer_signup
from broker.services.jobs import job_book, job_cancel
from common.errors import DomainError, PaymentRequired
from common.money import from_micros, to_micros
from financing.models import Advance, ApplicationStatus
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.lenders import (
    advance_fund,
    lender_capital_commit,
    lender_preference_set,
    lender_signup,
)
from financing.services.reserved import reserved_contract_open
from marketplace.models import Customer, GPUModel, Node, Provider, Tier
from marketplace.services.assessment import fleet_assess
from marketplace.services.catalog import catalog_sync
from marketplace.services.nodes import node_register, node_update_listing
from marketplace.services.providers import provider_payout_account_connect, provider_signup
from marketplace.services.verification import node_verify
from simulator.agents import SimAgent
from simulator.clock import SimBeat, SimClock, eager_celery, simulated_time
from simulator.market import (
    UPGRADE,
    JobPlan,
    RigPlan,
    jobs_plan,
    providers_plan,
    slug_for_profile,
    trace_mix,
)

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday (the weekly payout day), fixed for determinism
PASSWORD = "simulated-market-7"
AI_TIERS = (Tier.TRAINING.value, Tier.FINE_TUNING.value, Tier.INFERENCE.value)


@dataclass
class SimConfig:
    providers: int = 50
    customers: int = 30
    hours: float = 24.0
    seed: int = 7
    tick_s: int = 60
    heartbeat_s: int = 900
    offline_after_s: int = 2700
    settle_s: int = 3600  # settlement beat period (production: 30 s; amounts do not depend on it: every lease
    # account also settles when its lease closes)
    failures_per_node_day: float = 0.35
    financed_share: float = 1 / 16  # providers that get a financed upgrade (at least one)


@dataclass
class SimNode:
    node: Node
    rig: RigPlan
    provider: Provider
    agent: SimAgent | None = None


@dataclass
class SimState:
    """What the loop records that the database does not."""

    attempts: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    topups: int = 0
    crashes: int = 0
    cancels: int = 0
    financing: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    samples: list[tuple[float, dict[str, int], dict[str, int]]] = field(default_factory=list)  # t, held, capacity
    phases: dict[str, float] = field(default_factory=dict)  # CPU seconds per part of the loop
    rounds: int = 0
    agent_requests: int = 0
    agent_steps: int = 0
    ticks: int = 0
    setup_s: float = 0.0
    loop_s: float = 0.0


class Simulation:
    def __init__(self, config: SimConfig, *, log: Callable[[str], None] = lambda s: None) -> None:
        self.cfg = config
        self.log = log
        self.rng = random.Random(config.seed)
        self.fail_rng = random.Random(config.seed * 1_000_003 + 1)
        self.clock = SimClock(START)
        self.state = SimState()
        self.nodes: list[SimNode] = []
        self.agents: list[SimAgent] = []
        self.customers: list[Customer] = []
        self.providers: list[tuple[Provider, list[RigPlan]]] = []
        self.slugs: dict[str, str] = {}
        self.models: dict[str, GPUModel] = {}
        self.cancel_due: list[tuple[float, int]] = []
        self.financed = False
        self.staff: User | None = None
        self.lender: User | None = None
        self.jobs_seq = 0
        self.round_signature: tuple[Any, ...] | None = None
        self.round_asked = False

    # ------------------------------------------------------------------------------------------- run
    def run(self) -> SimState:
        with ExitStack() as stack:
            stack.enter_context(simulated_time(self.clock))
            stack.enter_context(eager_celery())
            stack.enter_context(
                override_settings(
                    CACHES=self._caches(),
                    CELERY_BEAT_SCHEDULE=self._schedule(),
                    RIGSHIFT_HEARTBEAT_INTERVAL_S=self.cfg.heartbeat_s,
                    RIGSHIFT_NODE_OFFLINE_AFTER_S=self.cfg.offline_after_s,
                    # throwaway accounts: a fast hasher keeps setup in seconds
                    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
                    RIGSHIFT_RATE_LIMITS={"login": "1000/min", "signup": "100000/hour", "agent": "100000/min"},
                )
            )
            t0 = time.perf_counter()
            self._setup()
            t1 = time.perf_counter()
            self._loop()
            self.state.loop_s = time.perf_counter() - t1
            self.state.setup_s = t1 - t0
            self.state.agent_requests = sum(a.session.requests for a in self.agents)
            self.state.agent_steps = sum(a.steps for a in self.agents)
        return self.state

    def _caches(self) -> dict[str, Any]:
        """The configured cache, except that the embedded default (a file cache: a third of the agents' time goes
        to its files) is replaced by an in-process one; Redis stays Redis."""
        caches = settings.CACHES
        if "filebased" in caches["default"]["BACKEND"]:
            return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "simulate"}}
        return caches

    def _schedule(self) -> dict[str, Any]:
        schedule = {name: dict(entry) for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
        for entry in schedule.values():
            if entry["task"] == "billing.tasks.settle_usage":
                entry["schedule"] = max(float(str(entry["schedule"])), float(self.cfg.settle_s))
        return schedule

    # ------------------------------------------------------------------------------------------ setup
    def _setup(self) -> None:
        catalog_sync()
        self.models = {m.slug: m for m in GPUModel.objects.all()}
        self.staff = User.objects.create_user("sim-staff", "staff@sim.rigshift.test", PASSWORD, is_staff=True)
        self.lender = lender_signup(
            username="sim-lender", email="lender@sim.rigshift.test", password=PASSWORD, name="Simulated Capital"
        )
        lender_preference_set(
            lender_user=self.lender, mode="hand_picked", max_per_advance_micros=0, tiers=[], max_payoff_months=24
        )
        lender_capital_commit(lender_user=self.lender, amount_micros=to_micros(amount="250000"))
        for plan in providers_plan(count=self.cfg.providers, rng=self.rng):
            provider, _ = provider_signup(
                username=f"sim-provider-{plan.index:03d}",
                password=PASSWORD,
                email=f"provider{plan.index}@sim.rigshift.test",
                company=f"Simulated Hash {plan.index:03d}",
                contact_name="Sim Miner",
                country=plan.country,
            )
            provider = provider_payout_account_connect(provider=provider)
            self.providers.append((provider, plan.rigs))
            fleet: dict[str, int] = {}
            for rig in plan.rigs:
                name = simulate(f"1x{rig.model_key}").gpus[0].name
                fleet[name] = fleet.get(name, 0) + rig.gpus
            fleet_assess(provider=provider, lines=list(fleet.items()))
            for n, rig in enumerate(plan.rigs):
                self._add_node(provider=provider, rig=rig, name=f"rig-{n:02d}-{rig.model_key.lower()}")
        for c in range(self.cfg.customers):
            customer, _ = customer_signup(
                username=f"sim-customer-{c:03d}",
                password=PASSWORD,
                email=f"customer{c}@sim.rigshift.test",
                company=f"Simulated AI Lab {c:03d}",
            )
            self.customers.append(customer)
            topup_create(user=customer.user, amount_micros=to_micros(amount=str(self.rng.choice([500, 1000, 2000]))))
            self.state.topups += 1
        plans, _ = jobs_plan(customers=self.cfg.customers, hours=self.cfg.hours, tasks=trace_mix(), rng=self.rng)
        self.plans = plans
        self.listed_slugs = sorted({self._slug(sn.rig.model_key) for sn in self.nodes if sn.rig.ai_grade})
        self.beat = SimBeat(tick_s=self.cfg.tick_s, start=self.clock.now)
        self.log(
            f"setup: {len(self.providers)} providers, {len(self.nodes)} nodes "
            f"({sum(1 for n in self.nodes if n.rig.ai_grade)} AI-grade), {len(self.customers)} customers, "
            f"{len(self.plans)} bookings planned"
        )

    def _slug(self, model_key: str) -> str:
        if model_key not in self.slugs:
            self.slugs[model_key] = slug_for_profile(model_key)
        return self.slugs[model_key]

    def _add_node(self, *, provider: Provider, rig: RigPlan, name: str) -> SimNode:
        slug = self._slug(rig.model_key)
        host = simulated_host(count=rig.gpus, vram_gb=simulate(f"1x{rig.model_key}").gpus[0].vram_gb)
        node, token = node_register(
            provider=provider,
            name=name,
            region=rig.region,
            country=rig.country,
            gpu_model_slug=slug,
            gpu_count=rig.gpus,
            cpu_cores=host["cpu_cores"],
            ram_gb=host["ram_gb"],
            disk_gb=host["disk_gb"],
            inet_down_mbps=host["inet_down_mbps"],
            inet_up_mbps=host["inet_up_mbps"],
        )
        agent = SimAgent(
            node_id=node.pk,
            name=f"{provider.user.username}/{name}",
            token=token,
            profile=rig.profile,
            clock=self.clock,
            interval_s=self.cfg.heartbeat_s,
        )
        agent.step()  # the provider starts the agent: it registers its hardware and heartbeats
        sim_node = SimNode(node=node, rig=rig, provider=provider)
        self.nodes.append(sim_node)
        if not rig.ai_grade:
            # Unsuitable cards: the assessment said so; the provider stops the agent and never lists the node.
            self.state.agent_requests += agent.session.requests
            return sim_node
        node.refresh_from_db()
        assert self.staff is not None
        node_verify(node=node, by=self.staff)
        reference = self.models[slug].reference_price_micros
        price = int(reference * self.rng.uniform(0.85, 1.2)) // 10_000 * 10_000
        node_update_listing(
            node=node,
            price_micros=price,
            min_bid_micros=price * 6 // 10,
            available_from=None,
            available_until=None,
            listed=True,
        )
        sim_node.agent = agent
        self.agents.append(agent)
        return sim_node

    # ------------------------------------------------------------------------------------------- loop
    def _timed(self, phase: str, fn: Callable[[], Any]) -> None:
        t = time.process_time()
        fn()
        self.state.phases[phase] = self.state.phases.get(phase, 0.0) + time.process_time() - t

    def _loop(self) -> None:
        """Ticks. `match_round_soon` (asked for by bookings and failovers) is debounced to one round per tick phase,
        as production debounces the requests of the same 0.3 s."""
        import broker.dispatch

        horizon = self.cfg.hours * 3600
        plan_i = 0
        with mock.patch.object(broker.dispatch, "match_round_request", self._round_soon):
            while self.clock.elapsed_s < horizon:
                self.state.ticks += 1
                self._timed("agents", self._failures)
                self._timed("agents", self._agents_step)
                self._timed("rounds", self._round_flush)
                elapsed = self.clock.elapsed_s
                self._timed("customers", self._cancels)
                due = []
                while plan_i < len(self.plans) and self.plans[plan_i].at_s <= elapsed:
                    due.append(self.plans[plan_i])
                    plan_i += 1
                self._timed("customers", functools.partial(self._book_all, due))
                self._timed("rounds", self._round_flush)
                if not self.financed and elapsed >= horizon / 4:
                    self.financed = True
                    self._timed("financing", self._finance)
                self._timed("beat", lambda: self.beat.run_due(self.clock.now, skip=self._beat_skip()))
                self._timed("rounds", self._round_flush)
                self._timed("sampling", self._sample)
                self.clock.advance(self.cfg.tick_s)

    def _round_soon(self, shard: str = "default") -> None:
        self.round_asked = True

    def _round_flush(self) -> None:
        if self.round_asked:
            self.round_asked = False
            self.state.rounds += 1
            from broker.tasks import match_round

            match_round.delay("default")

    def _failures(self) -> None:
        now = self.clock.epoch()
        p = self.cfg.failures_per_node_day * self.cfg.tick_s / 86400
        for agent in self.agents:
            if agent.down:
                continue
            if self.fail_rng.random() < p:
                agent.crash(until=now + self.fail_rng.uniform(20, 150) * 60)
                self.state.crashes += 1

    def _agents_step(self) -> None:
        """Step the agents that are due; fetch leases only where there is something to start or stop."""
        now = self.clock.epoch()
        waiting: dict[int, set[int]] = {}
        for node_id, pk in Lease.objects.filter(state=LeaseState.RESERVED).values_list("node_id", "pk"):
            waiting.setdefault(node_id, set()).add(pk)
        holding: dict[int, set[int]] = {}
        for node_id, pk in Lease.objects.filter(state=LeaseState.ACTIVE).values_list("node_id", "pk"):
            holding.setdefault(node_id, set()).add(pk)
        for agent in self.agents:
            if agent.down:
                assert agent.down_until is not None
                if now < agent.down_until:
                    continue
                agent.recover()
            to_start = any(not agent.knows(pk) for pk in waiting.get(agent.node_id, ()))
            # a workload the server no longer holds (preempted, failed, cancelled) is to be stopped
            to_stop = bool(
                agent.running_lease_ids() - holding.get(agent.node_id, set()) - waiting.get(agent.node_id, set())
            )
            if to_start or now >= agent.next_step_at or agent.workload_ended():
                agent.step(sync=to_start or to_stop)

    def _cancels(self) -> None:
        now = self.clock.elapsed_s
        due = [item for item in self.cancel_due if item[0] <= now]
        if not due:
            return
        self.cancel_due = [item for item in self.cancel_due if item[0] > now]
        for _, job_id in due:
            job = Job.objects.select_related("customer").get(pk=job_id)
            if job.state == JobState.PENDING and not Lease.objects.filter(job=job).exists():
                try:
                    job_cancel(job=job, customer=job.customer)
                except DomainError as exc:  # a product fault the run must show, not hide
                    self.state.anomalies.append(f"cancel of job {job.pk} refused: {exc}")
                    continue
                self.state.cancels += 1

    def _request(self, plan: JobPlan) -> dict[str, Any]:
        rng = self.rng
        data: dict[str, Any] = {
            "name": f"sim-{plan.gpu_count}gpu-{plan.duration_s}s",
            "image": "ghcr.io/rigshift-sim/train:latest",
            "gpu_count": plan.gpu_count,
            "duration_hours": str((Decimal(plan.duration_s) / 3600).quantize(Decimal("0.0001"))),
        }
        if plan.constrained:
            models = rng.sample(self.listed_slugs, k=min(len(self.listed_slugs), rng.randint(1, 3)))
            data["gpu_models"] = models
            reference = max(self.models[s].reference_price_micros for s in models)
        else:
            tier = rng.choices(AI_TIERS, weights=[3 if plan.gpu_count >= 4 else 1, 5, 3])[0]
            data["min_tier"] = tier
            candidates = [s for s in self.listed_slugs if self.models[s].tier == tier] or self.listed_slugs
            reference = self.models[rng.choice(candidates)].reference_price_micros
        if plan.regions:
            data["regions"] = [rng.choice(["us", "eu", "asia"])]
        price = int(reference * plan.price_factor) // 10_000 * 10_000 or 10_000
        if plan.interruptible:
            data["mode"] = "interruptible"
            data["bid"] = str(from_micros(micros=price * 6 // 10 // 10_000 * 10_000 or 10_000))
        else:
            data["mode"] = "on_demand"
            data["max_price"] = str(from_micros(micros=price))
        return data

    def _book_all(self, plans: list[JobPlan]) -> None:
        for plan in plans:
            self._book(plan)

    def _book(self, plan: JobPlan) -> None:
        customer = self.customers[plan.customer]
        data = self._request(plan)
        self.state.attempts += 1
        self.jobs_seq += 1
        key = f"sim-{self.jobs_seq}"
        for attempt in (1, 2):
            try:
                job = job_book(customer=customer, data=data, idempotency_key=key)
            except PaymentRequired as exc:
                shortfall = int((exc.details or {}).get("shortfall_micros", 0))
                if attempt == 1 and self.rng.random() < 0.8:
                    amount = max(to_micros(amount="500"), -(-shortfall * 2 // 10_000) * 10_000)
                    topup_create(user=customer.user, amount_micros=min(amount, to_micros(amount="100000")))
                    self.state.topups += 1
                    continue
                self._refuse("wallet cannot cover the hold (402)")
                return
            except DomainError as exc:
                self._refuse(f"{exc.code} (400)")
                return
            if plan.cancel_after_s is not None:
                self.cancel_due.append((self.clock.elapsed_s + plan.cancel_after_s, job.pk))
            return

    def _refuse(self, reason: str) -> None:
        self.state.refused[reason] = self.state.refused.get(reason, 0) + 1

    def _finance(self) -> None:
        """The best earners that still run mining cards finance an upgrade.

        A day of history is too short for underwriting on metered earnings (it projects the trailing 90 days), so
        each of them first signs a 12-month reserved contract with a customer for half of its best node: the
        contracted revenue is what the advance is underwritten on (rule C of financing's underwriting). Note: the
        broker does not hold reserved capacity out of matching yet, so the contract is money-side only here."""
        assert self.staff is not None and self.lender is not None
        earnings = dict(
            LeaseAccount.objects.values_list("provider_id")
            .annotate(s=Sum("provider_micros"))
            .values_list("provider_id", "s")
        )
        candidates = sorted(
            (
                (earnings.get(p.user_id, 0) or 0, p.pk, p, rigs)
                for p, rigs in self.providers
                if any(not r.ai_grade for r in rigs) and (earnings.get(p.user_id, 0) or 0) > 0
            ),
            key=lambda x: (-x[0], x[1]),
        )
        wanted = max(1, round(len(self.providers) * self.cfg.financed_share))
        model_key, count = UPGRADE
        for _, _, provider, rigs in candidates[:wanted]:
            node = Node.objects.filter(provider=provider, listed=True).order_by("-reliability", "pk").first()
            if node is None:
                continue
            try:
                buyer = self.customers[0].user
                monthly = node.price_micros * 730 * max(1, node.gpu_count // 2)
                topup_create(
                    user=buyer, amount_micros=min(monthly // 10_000 * 10_000 + 10_000, to_micros(amount="100000"))
                )
                self.state.topups += 1
                reserved_contract_open(
                    customer_user=buyer,
                    node=node,
                    gpu_model=node.gpu_model,
                    gpu_count=max(1, node.gpu_count // 2),
                    term_months=12,
                    list_price_micros=node.price_micros,
                )
                app = advance_application_submit(
                    provider_user=provider.user,
                    gpu_model_slug=self._slug(model_key),
                    count=count,
                    node_id=node.pk,
                )
                if app.status != ApplicationStatus.OFFERED:
                    self.state.financing.append(
                        f"{provider.user.username}: declined ({'; '.join(app.decline_reasons)})"
                    )
                    continue
                advance = advance_application_approve(staff_user=self.staff, application_id=app.pk)
                advance = advance_fund(lender_user=self.lender, advance_id=advance.pk)
            except DomainError as exc:
                self.state.financing.append(f"{provider.user.username}: {exc}")
                continue
            advance = Advance.objects.get(pk=advance.pk)
            self.state.financing.append(
                f"{provider.user.username}: {app.offered_gpu_count}x {model_key} financed, advance {advance.status}"
            )
            home = next(r for r in rigs if r.ai_grade)
            rig = RigPlan(model_key, app.offered_gpu_count or count, home.region, home.country, ai_grade=True)
            self._add_node(provider=provider, rig=rig, name=f"financed-{model_key.lower()}")

    def _beat_skip(self) -> frozenset[str]:
        """The beat's matching round is skipped (it stays due) when it cannot place anything the last round did not:
        no job waits, or the waiting jobs, the leases that closed (freeing GPUs) and the nodes online are all as
        they were at the last round. Bookings, failovers and preemptions still ask for their own rounds."""
        skip = frozenset({"broker.tasks.match_round"})
        waiting = Job.objects.filter(state__in=[JobState.PENDING, JobState.PREEMPTED])
        if not waiting.exists():
            return skip
        signature = (
            tuple(waiting.aggregate(n=Count("pk"), top=Max("pk")).values()),
            Lease.objects.exclude(state__in=[LeaseState.RESERVED, LeaseState.ACTIVE]).count(),
            Node.objects.filter(status="online", listed=True).count(),
        )
        if signature == self.round_signature:
            return skip
        self.round_signature = signature
        self.state.rounds += 1
        return frozenset()

    def _sample(self) -> None:
        held: dict[str, int] = {}
        for tier, gpus in (
            Lease.objects.filter(state__in=[LeaseState.RESERVED, LeaseState.ACTIVE])
            .values_list("node__gpu_model__tier")
            .annotate(g=Sum("gpu_count"))
        ):
            held[tier] = gpus or 0
        capacity: dict[str, int] = {}
        for tier, gpus in (
            Node.objects.filter(listed=True, verified=True, status="online")
            .values_list("gpu_model__tier")
            .annotate(g=Sum("gpu_count"))
        ):
            capacity[tier] = gpus or 0
        self.state.samples.append((self.clock.elapsed_s, held, capacity))
