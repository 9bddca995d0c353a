"""A year of market with financing in it, in simulated time: `manage.py simulate --days 365 --scenario stress|base`.

Everything goes through the real services: jobs are booked, leased on their node, reported by the node's agent and
settled (broker/services/replay.py), so every repayment is withheld from a real settlement or a reserved contract's
monthly charge; applications are underwritten, approved by staff and funded by lenders (automatic and hand-picked);
disbursement, provider payouts, contract demand, delivery, the deadline policy and the advance review are the
product's own. The clock moves in WEEKLY ticks (coarse over a year: each live node runs one job a week on its free
GPUs for TICK_JOB_HOURS, and the daily/hourly beat work — reserved-contract charges, the demand and advance reviews,
the offline sweep, provider payouts — runs once a tick). Heartbeats come once a tick, so the offline threshold is one
tick and a day (a node that stops is offline by the next tick, as a 60 s threshold is for 15 s heartbeats).

The market (seeded, deterministic for a given --seed):
  * ESTABLISHED providers, each with a seasoned node of RTX 3090s that has earned from arm's-length AI labs for 13
    weeks; at week 0 each applies for RTX 4090s on those earnings (market-backed advances), its new node arrives
    two weeks later and earns too;
  * MINERS with mining cards only and no AI history; labs post reserved contracts no provider has capacity for
    (open demand), each miner offers to fulfil one, is financed against the contract (contract-backed advances),
    registers the node, and the contract's payments repay its lenders first;
  * a RING: a provider and two customer accounts sharing its network address, which booked its node to manufacture
    earnings, then apply for an advance and offer to fulfil the ring's own demand (both declined: related parties).

Scenarios:
  * base: prices hold, no node fails, every contract is delivered on time;
  * stress: the financed models' prices (RTX 3090 and RTX 4090) fall linearly to half over the year; STRESS_FAIL_SHARE
    of the market-financed providers' nodes fail for good at a random week; of the miners a third deliver on time,
    a third late (after the deadline: the contract is released, the advance recalled and written down by policy) and a
    third never.

The report (simulator/year_report.py has the definitions) is per lender and overall.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from unittest import mock

from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings
from rigshift_agent.challenge import solve
from rigshift_agent.detect import simulate, simulated_benchmark, simulated_challenge_tflops, simulated_host

import broker.dispatch
from billing.services.payouts import payout_run
from billing.services.wallet import wallet_credit
from broker.models import Lease
from broker.services.customers import customer_signup
from broker.services.replay import job_run_finish, job_run_start
from common.errors import DomainError
from common.money import MICROS
from financing.models import AdvanceStatus, ApplicationStatus, PartySignalKind
from financing.services.advances import advances_review
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.demand import contract_demand_offer, contract_demand_post, demands_review
from financing.services.lenders import advance_fund, lender_capital_commit, lender_preference_set, lender_signup
from financing.services.parties import party_signal_record
from financing.services.reserved import reserved_contracts_charge_due
from marketplace.models import Customer, Node, Provider
from marketplace.services.catalog import catalog_sync
from marketplace.services.challenge import (
    challenge_spec,
    node_challenge_commit,
    node_challenge_deliver,
    node_challenge_reveal,
)
from marketplace.services.nodes import node_register, node_update_listing
from marketplace.services.providers import provider_payout_account_connect, provider_signup
from marketplace.services.reliability import nodes_mark_offline, nodes_reliability_refresh
from marketplace.services.verification import node_agent_report_apply, node_verify
from simulator.clock import SimClock, eager_celery, simulated_time
from simulator.year_report import year_report_build, year_report_lines

START = datetime(2027, 1, 4, 0, 0, tzinfo=UTC)  # a Monday
TICK_DAYS = 7
TICK_JOB_HOURS = 100  # each live node is busy ~60 % of the week
PRE_HISTORY_WEEKS = 13
SEASONED_DAYS = 120
ESTABLISHED = 9
MINERS = 6
LABS = 8
STRESS_FAIL_SHARE = 0.34
FINANCED_SLUGS = ("rtx-3090", "rtx-4090")
OLD_PROFILE, NEW_PROFILE = "RTX3090", "RTX4090"
OLD_PRICE, NEW_PRICE = 230_000, 400_000  # $/GPU-hour at the start
DEMAND_PRICE = 300_000
PASSWORD = "simulated-year-7"
RING_ADDRESS = "81.2.69.142"


@dataclass
class YearConfig:
    days: int = 365
    scenario: str = "stress"
    seed: int = 7


@dataclass
class YearState:
    """What the loop knows that the database does not (who is who, what was planned)."""

    staff: User | None = None
    lenders: list[User] = field(default_factory=list)
    labs: list[Customer] = field(default_factory=list)
    established: list[Provider] = field(default_factory=list)
    miners: list[tuple[Provider, str]] = field(default_factory=list)  # provider, on_time | late | never
    ring: Provider | None = None
    ring_buyers: list[Customer] = field(default_factory=list)
    live: list[Node] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)  # provider user id → week its nodes fail for good
    deliveries: dict[int, int] = field(default_factory=dict)  # miner user id → week it registers its node
    events: list[str] = field(default_factory=list)
    ticks: int = 0
    jobs: int = 0
    wall_s: float = 0.0


class FinanceYear:
    def __init__(self, config: YearConfig, *, log: Callable[[str], None] = lambda s: None) -> None:
        if config.scenario not in ("base", "stress"):
            raise ValueError("scenario: base or stress")
        self.cfg = config
        self.log = log
        self.rng = random.Random(config.seed)
        self.clock = SimClock(START - timedelta(days=SEASONED_DAYS))
        self.state = YearState()
        self.weeks = max(1, math.ceil(config.days / TICK_DAYS))
        self.seq = 0

    @property
    def stress(self) -> bool:
        return self.cfg.scenario == "stress"

    # ------------------------------------------------------------------------------------------------ running
    def run(self) -> YearState:
        t0 = time.perf_counter()
        with (
            simulated_time(self.clock),
            eager_celery(),
            override_settings(
                RIGSHIFT_NODE_OFFLINE_AFTER_S=(TICK_DAYS + 1) * 86400,
                # simulated accounts never log in: a fast hasher keeps 30 signups from costing ~20 s of PBKDF2
                PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            ),
            mock.patch.object(broker.dispatch, "match_round_request", lambda shard="default": None),
        ):
            self._setup()
            for week in range(-PRE_HISTORY_WEEKS, 0):
                self._tick(week)
            for week in range(self.weeks):
                self._tick(week)
        self.state.wall_s = time.perf_counter() - t0
        return self.state

    def _tick(self, week: int) -> None:
        self.clock.now = START + timedelta(days=TICK_DAYS * week)
        self.state.ticks += week >= 0
        if week >= 0:
            self._prices(week)
            self._financing(week)
        self._market(week)
        self.clock.now = START + timedelta(days=TICK_DAYS * (week + 1)) - timedelta(hours=1)
        self._beat()

    def _beat(self) -> None:
        """The day's and the hour's beat work, once a tick (see the module docstring)."""
        now = self.clock.now
        nodes_mark_offline(now=now)
        nodes_reliability_refresh(now=now)
        reserved_contracts_charge_due(now=now)
        demands_review(now=now)
        advances_review(now=now)
        payout_run(now=now)

    # ------------------------------------------------------------------------------------------------ setup
    def _setup(self) -> None:
        catalog_sync()
        st = self.state
        st.staff = User.objects.create_user("sim-staff", "staff@rigshift.test", PASSWORD, is_staff=True)
        for name, mode, capital in (
            ("lender-auto-a", "auto", 400_000),
            ("lender-auto-b", "auto", 250_000),
            ("lender-picker", "hand_picked", 150_000),
        ):
            user = lender_signup(username=name, email=f"{name}@capital.test", password=PASSWORD, name=name)
            lender_preference_set(
                lender_user=user,
                mode=mode,
                max_per_advance_micros=1_000 * MICROS if mode == "auto" else 0,
                tiers=[],
                max_payoff_months=24,
            )
            lender_capital_commit(lender_user=user, amount_micros=capital * MICROS)
            st.lenders.append(user)
        for i in range(LABS):
            lab, _token = customer_signup(
                username=f"lab-{i}", password=PASSWORD, email=f"ml@lab-{i}.ai", company=f"AI Lab {i}"
            )
            wallet_credit(user=lab.user, amount_micros=2_000_000 * MICROS, key=f"year:wallet:lab-{i}")
            st.labs.append(lab)
        for i in range(ESTABLISHED):
            provider = self._provider(f"farm-{i}", f"ops@farm-{i}.io")
            st.established.append(provider)
            st.live.append(self._node(provider, f"farm-{i}-3090s", OLD_PROFILE, 8, OLD_PRICE))
        outcomes = ["on_time"] * MINERS if not self.stress else ["on_time", "on_time", "late", "late", "never", "never"]
        for i, outcome in enumerate(outcomes[:MINERS]):
            st.miners.append((self._provider(f"miner-{i}", f"dana@miner-{i}.io"), outcome))
        self._ring()
        if self.stress:
            failing = self.rng.sample(st.established, k=max(1, round(len(st.established) * STRESS_FAIL_SHARE)))
            for provider in failing:
                st.failures[provider.user_id] = self.rng.randint(8, max(9, min(40, self.weeks - 4)))
        for provider, outcome in st.miners:
            if outcome != "never":
                st.deliveries[provider.user_id] = 2 + self.rng.randint(0, 2) if outcome == "on_time" else 8
        self.log(
            f"setup: {ESTABLISHED} established providers, {MINERS} miners, 1 ring, {LABS} labs, 3 lenders; "
            f"{self.weeks} weekly ticks ({self.cfg.scenario})"
        )

    def _ring(self) -> None:
        st = self.state
        ring = self._provider("ring-farm", "boss@gmail.com")
        st.ring = ring
        party_signal_record(user=ring.user, kind=PartySignalKind.NETWORK, value=RING_ADDRESS)
        for i in range(2):
            buyer, _token = customer_signup(
                username=f"ring-buyer-{i}", password=PASSWORD, email=f"buyer{i}@outlook.com", company=""
            )
            party_signal_record(user=buyer.user, kind=PartySignalKind.NETWORK, value=RING_ADDRESS)
            wallet_credit(user=buyer.user, amount_micros=300_000 * MICROS, key=f"year:wallet:ring-{i}")
            st.ring_buyers.append(buyer)
        st.live.append(self._node(ring, "ring-3090s", OLD_PROFILE, 8, OLD_PRICE))

    def _provider(self, username: str, email: str) -> Provider:
        provider, _token = provider_signup(
            username=username,
            password=PASSWORD,
            email=email,
            company=username,
            contact_name=username,
            country="US",
            payout_currency="USD",
        )
        return provider_payout_account_connect(provider=provider)

    def _node(self, provider: Provider, name: str, profile: str, count: int, price: int) -> Node:
        """Register, report, pass the compute challenge and have staff verify a node (the agent's path, in-process)."""
        hardware = simulate(f"{count}x{profile}")
        slug = "rtx-3090" if profile == OLD_PROFILE else "rtx-4090"
        host = simulated_host(count=count, vram_gb=hardware.gpus[0].vram_gb)
        with transaction.atomic():
            node, _raw = node_register(
                provider=provider,
                name=name,
                region="us",
                country="US",
                gpu_model_slug=slug,
                gpu_count=count,
                cpu_cores=host["cpu_cores"],
                ram_gb=host["ram_gb"],
                disk_gb=host["disk_gb"],
                inet_down_mbps=host["inet_down_mbps"],
                inet_up_mbps=host["inet_up_mbps"],
                price_micros=price,
                min_bid_micros=price * 6 // 10,
                listed=True,
            )
            report = {
                "gpus": [gpu.report() for gpu in hardware.gpus],
                "driver_version": hardware.driver_version,
                "cuda_version": hardware.cuda_version,
                "cpu_cores": hardware.cpu_cores,
                "ram_gb": hardware.ram_gb,
                "disk_gb": hardware.disk_gb,
                "benchmark": simulated_benchmark(f"{count}x{profile}"),
                "agent_version": "simulated-year",
            }
            node_agent_report_apply(node=node, report=report)
            challenge = node_challenge_deliver(node=node)
            if challenge is not None:
                work = challenge_spec(challenge)
                solution = solve(work, simulated_tflops=simulated_challenge_tflops(f"{count}x{profile}"))
                answered = node_challenge_commit(
                    node=node,
                    challenge_id=challenge.pk,
                    digest=solution.digest,
                    compute_s=solution.compute_s,
                    backend=solution.backend,
                )
                node_challenge_reveal(node=node, challenge_id=challenge.pk, rows=solution.reveal(work, answered.picks))
            assert self.state.staff is not None
            node_verify(node=node, by=self.state.staff)
        node.refresh_from_db()
        return node

    # ------------------------------------------------------------------------------------------------ each tick
    def _prices(self, week: int) -> None:
        """Stress: the financed models' asks fall linearly to half of their start price over the year."""
        if not self.stress:
            return
        factor = 1 - 0.5 * min(1.0, week * TICK_DAYS / 365)
        for node in self.state.live:
            if node.gpu_model.slug in FINANCED_SLUGS:
                base = OLD_PRICE if node.gpu_model.slug == "rtx-3090" else NEW_PRICE
                price = int(base * factor) // 1000 * 1000
                node_update_listing(
                    node=node,
                    price_micros=price,
                    min_bid_micros=price * 6 // 10,
                    available_from=None,
                    available_until=None,
                    listed=True,
                )
                node.price_micros = price

    def _market(self, week: int) -> None:
        """Every live node runs one job on its GPUs not held by a reserved contract (the ring's node: the ring's
        own accounts, before the year; arm's-length labs afterwards would not book a fraud, so it idles)."""
        st = self.state
        st.live = [n for n in st.live if st.failures.get(n.provider.user_id, 10**6) > week]
        leases: list[Lease] = []
        for i, node in enumerate(st.live):
            held = sum(c.gpu_count for c in node.reserved_contracts.filter(status="active"))
            gpus = node.gpu_count - held
            if gpus <= 0:
                continue
            if st.ring is not None and node.provider_id == st.ring.pk:
                if week >= 0:
                    continue
                customer = st.ring_buyers[week % 2]
            else:
                customer = st.labs[(i + week) % len(st.labs)]
            lease = job_run_start(
                customer=customer,
                node=node,
                gpu_count=gpus,
                hours=TICK_JOB_HOURS,
                price_micros=node.price_micros,
                key=f"year:{week}:{node.pk}",
            )
            if lease is not None:
                leases.append(lease)
        self.clock.now = self.clock.now + timedelta(hours=TICK_JOB_HOURS)
        for lease in leases:
            job_run_finish(lease=lease)
        st.jobs += len(leases)

    def _financing(self, week: int) -> None:
        st = self.state
        if week == 0:
            for provider in st.established:
                self._apply_market(provider)
            self._ring_attempts()
            for i, (provider, _outcome) in enumerate(st.miners):
                self._apply_contract(provider, st.labs[i % len(st.labs)])
        if week == 2:
            for provider in st.established:
                if provider.user.advances.filter(status__in=[AdvanceStatus.ACTIVE]).exists():
                    st.live.append(self._node(provider, f"{provider.user.username}-4090s", NEW_PROFILE, 8, NEW_PRICE))
        if week == 26:
            self._ring_attempts()
        for provider, _outcome in st.miners:
            if st.deliveries.get(provider.user_id) == week:
                st.live.append(self._node(provider, f"{provider.user.username}-3090s", OLD_PROFILE, 8, OLD_PRICE))

    def _approve_and_fund(self, app_id: int) -> None:
        """Staff approve (automatic lenders fund at once); the hand-picking lender funds what is left."""
        assert self.state.staff is not None
        advance = advance_application_approve(staff_user=self.state.staff, application_id=app_id)
        if advance.status == AdvanceStatus.FUNDING:
            try:
                advance_fund(lender_user=self.state.lenders[-1], advance_id=advance.pk)
            except DomainError as exc:
                self.state.events.append(f"advance {advance.pk}: the hand-picking lender could not fund it: {exc}")

    def _apply_market(self, provider: Provider) -> None:
        app = advance_application_submit(provider_user=provider.user, gpu_model_slug="rtx-4090", count=8)
        if app.status != ApplicationStatus.OFFERED:
            self.state.events.append(f"{provider.user.username}: declined: {'; '.join(app.decline_reasons)}")
            return
        self._approve_and_fund(app.pk)

    def _apply_contract(self, provider: Provider, lab: Customer) -> None:
        demand = contract_demand_post(
            customer_user=lab.user, gpu_model_slug="rtx-3090", gpu_count=4, term_months=12, price_micros=DEMAND_PRICE
        )
        app = contract_demand_offer(provider_user=provider.user, demand_id=demand.pk)
        if app.status != ApplicationStatus.OFFERED:
            self.state.events.append(f"{provider.user.username}: declined: {'; '.join(app.decline_reasons)}")
            return
        self._approve_and_fund(app.pk)

    def _ring_attempts(self) -> None:
        """The ring applies on its manufactured earnings, and offers to fulfil its own accounts' demand."""
        st = self.state
        assert st.ring is not None
        app = advance_application_submit(provider_user=st.ring.user, gpu_model_slug="rtx-4090", count=8)
        demand = contract_demand_post(
            customer_user=st.ring_buyers[0].user,
            gpu_model_slug="rtx-3090",
            gpu_count=4,
            term_months=12,
            price_micros=DEMAND_PRICE,
        )
        offer = contract_demand_offer(provider_user=st.ring.user, demand_id=demand.pk)
        for a in (app, offer):
            if a.status == ApplicationStatus.OFFERED:  # underwriting missed it: staff would approve, lenders fund
                self._approve_and_fund(a.pk)
            else:
                st.events.append(f"ring-farm: declined: {a.decline_reasons[0][:120]}")


def finance_year_outcome(*, config: YearConfig, log: Callable[[str], None] = lambda s: None) -> tuple[list[str], bool]:
    """Run the year in the current database (expected empty); its report lines and whether it reconciles."""
    sim = FinanceYear(config, log=log)
    state = sim.run()
    ring = state.ring.user if state.ring is not None else None
    report = year_report_build(now=sim.clock.now, ring_user=ring)
    lines = year_report_lines(
        report=report, scenario=config.scenario, days=config.days, weeks=sim.weeks, jobs=state.jobs, wall_s=state.wall_s
    )
    return [*state.events[:40], *lines], report.ledger_ok and report.fraud_funded == 0
