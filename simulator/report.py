"""The simulator's report: read back from the database (jobs, leases, ledger), reconciled, printed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from django.db.models import Count, Min, Q, Sum

from billing.models import Account, AccountKind, Entry, Payout, PayoutStatus, Settlement, SlaCredit
from billing.selectors.ledger import ledger_verify
from broker.models import Job, JobState, Lease, LeaseState
from common.money import format_usd
from financing.models import AdvanceRepayment, ReservedContractCharge
from simulator.run import AI_TIERS, SimConfig, SimState


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class SimReport:
    booked: int = 0
    refused: int = 0
    refused_reasons: dict[str, int] = field(default_factory=dict)
    created: int = 0
    placed: int = 0
    pending: int = 0
    cancelled_unplaced: int = 0
    expired_unplaced: int = 0
    completed: int = 0
    running: int = 0
    failed: int = 0
    failed_over_jobs: int = 0
    failed_leases: int = 0
    preempted_leases: int = 0
    preempted_jobs: int = 0
    cancelled_placed: int = 0
    waits_s: list[float] = field(default_factory=list)
    median_wait_s: float = 0.0
    p95_wait_s: float = 0.0
    utilisation: dict[str, float] = field(default_factory=dict)
    utilisation_all: float = 0.0
    charged: int = 0
    usage_charged: int = 0
    contracts_charged: int = 0
    fees: int = 0
    reserve: int = 0
    provider_share: int = 0
    sla_credits: int = 0
    sla_count: int = 0
    payouts: int = 0
    payouts_count: int = 0
    financing_repaid: int = 0
    money_in: int = 0
    money_out: int = 0
    balances: dict[str, int] = field(default_factory=dict)
    escrow_balance: int = 0
    open_holds: int = 0
    ledger_ok: bool = False
    ledger_violations: list[str] = field(default_factory=list)

    @property
    def balances_total(self) -> int:
        return sum(self.balances.values())

    def identities(self) -> list[str]:
        """The reconciliation checks; an empty list means the report adds up."""
        problems = []
        jobs_side = self.placed + self.pending + self.refused + self.cancelled_unplaced + self.expired_unplaced
        if jobs_side != self.booked:
            problems.append(f"jobs: placed+pending+refused+cancelled+expired = {jobs_side} != booked {self.booked}")
        if self.created + self.refused != self.booked:
            problems.append(f"jobs: created {self.created} + refused {self.refused} != booked {self.booked}")
        if self.money_in != self.money_out + self.balances_total:
            problems.append(f"money: in {self.money_in} != out {self.money_out} + balances {self.balances_total}")
        if self.charged != self.fees + self.reserve + self.provider_share:
            problems.append("settlements: charged != fee + reserve + provider share")
        return problems

    def last_line(self) -> str:
        return (
            f"jobs={self.booked} placed={self.placed} completed={self.completed} "
            f"median_wait_s={self.median_wait_s:.0f} utilisation={self.utilisation_all:.3f} "
            f"ledger_ok={1 if self.ledger_ok else 0}"
        )


def report_build(*, state: SimState) -> SimReport:
    r = SimReport()
    r.booked = state.attempts
    r.refused = sum(state.refused.values())
    r.refused_reasons = dict(sorted(state.refused.items()))
    jobs = Job.objects.annotate(
        n_leases=Count("leases"),
        first_lease=Min("leases__created_at"),
        n_failed=Count("leases", filter=Q(leases__state=LeaseState.FAILED)),
    )
    r.created = jobs.count()
    for job in jobs.only("state", "created_at"):
        if job.n_leases:
            r.placed += 1
            r.waits_s.append(max(0.0, (job.first_lease - job.created_at).total_seconds()))
            if job.state == JobState.CANCELLED:
                r.cancelled_placed += 1
        elif job.state == JobState.CANCELLED:
            r.cancelled_unplaced += 1
        elif job.state == JobState.FAILED:
            r.expired_unplaced += 1
        else:
            r.pending += 1
        if job.n_failed:
            r.failed_over_jobs += 1
        r.completed += job.state == JobState.COMPLETED
        r.running += job.state in (JobState.MATCHED, JobState.RUNNING)
        r.failed += job.state == JobState.FAILED
    r.failed_leases = Lease.objects.filter(state=LeaseState.FAILED).count()
    r.preempted_leases = Lease.objects.filter(state=LeaseState.PREEMPTED).count()
    r.preempted_jobs = Lease.objects.filter(state=LeaseState.PREEMPTED).values("job").distinct().count()
    r.median_wait_s = statistics.median(r.waits_s) if r.waits_s else 0.0
    r.p95_wait_s = _pct(r.waits_s, 0.95)

    held_total: dict[str, int] = {}
    cap_total: dict[str, int] = {}
    for _, held, cap in state.samples:
        for tier in AI_TIERS:
            held_total[tier] = held_total.get(tier, 0) + held.get(tier, 0)
            cap_total[tier] = cap_total.get(tier, 0) + cap.get(tier, 0)
    r.utilisation = {t: (held_total[t] / cap_total[t] if cap_total.get(t) else 0.0) for t in AI_TIERS if t in cap_total}
    all_cap = sum(cap_total.values())
    r.utilisation_all = sum(held_total.values()) / all_cap if all_cap else 0.0

    money = Settlement.objects.aggregate(
        c=Sum("charged_micros"), f=Sum("fee_micros"), r=Sum("reserve_micros"), p=Sum("provider_micros")
    )
    r.charged, r.fees, r.reserve, r.provider_share = (money[k] or 0 for k in "cfrp")
    r.usage_charged = r.charged
    # reserved-contract months are charged straight from the wallet, split like usage
    contract_txns = list(ReservedContractCharge.objects.values_list("ledger_transaction_id", flat=True))
    r.contracts_charged = ReservedContractCharge.objects.aggregate(s=Sum("amount_micros"))["s"] or 0
    legs = dict(
        Entry.objects.filter(transaction_id__in=contract_txns, amount__gt=0)
        .values_list("account__kind")
        .annotate(s=Sum("amount"))
        .values_list("account__kind", "s")
    )
    contract_fee = legs.get(AccountKind.PLATFORM_REVENUE, 0) or 0
    contract_reserve = legs.get(AccountKind.RESERVE_FUND, 0) or 0
    r.charged += r.contracts_charged
    r.fees += contract_fee
    r.reserve += contract_reserve
    r.provider_share += r.contracts_charged - contract_fee - contract_reserve
    sla = SlaCredit.objects.aggregate(s=Sum("credit_micros"), n=Count("pk"))
    r.sla_credits, r.sla_count = sla["s"] or 0, sla["n"] or 0
    paid = Payout.objects.exclude(status=PayoutStatus.FAILED).aggregate(s=Sum("amount_micros"), n=Count("pk"))
    r.payouts, r.payouts_count = paid["s"] or 0, paid["n"] or 0
    r.financing_repaid = AdvanceRepayment.objects.aggregate(s=Sum("amount_micros"))["s"] or 0

    # Money in/out is what crossed the gateway (the world outside the platform): top-ups and lender capital
    # came in (gateway clearing debited), payouts and disbursed advances went out (credited).
    gateway = Entry.objects.filter(account__kind=AccountKind.GATEWAY_CLEARING)
    r.money_in = -(gateway.filter(amount__lt=0).aggregate(s=Sum("amount"))["s"] or 0)
    r.money_out = gateway.filter(amount__gt=0).aggregate(s=Sum("amount"))["s"] or 0
    for kind, total in (
        Account.objects.exclude(kind=AccountKind.GATEWAY_CLEARING)
        .values_list("kind")
        .annotate(s=Sum("balance"))
        .order_by("kind")
    ):
        r.balances[kind] = total or 0
    r.escrow_balance = r.balances.get(AccountKind.CUSTOMER_ESCROW, 0)
    r.open_holds = (
        Job.objects.exclude(state__in=[JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED]).aggregate(
            s=Sum("held_micros")
        )["s"]
        or 0
    )
    ledger = ledger_verify()
    r.ledger_ok = ledger.ok
    r.ledger_violations = ledger.violations
    return r


def _usd(micros: int) -> str:
    return format_usd(micros=micros)


def report_lines(*, report: SimReport, state: SimState, config: SimConfig, wall_s: float) -> list[str]:
    r = report
    out = [
        f"RigShift market simulation: {config.providers} providers, {config.customers} customers, "
        f"{config.hours:g} h simulated, seed {config.seed}, tick {config.tick_s} s",
        "",
        "Jobs",
        f"  booked (booking requests)        {r.booked}",
        f"  refused at booking               {r.refused}"
        + (f"  ({', '.join(f'{k}: {v}' for k, v in r.refused_reasons.items())})" if r.refused_reasons else ""),
        f"  placed (got a lease)             {r.placed}",
        f"  pending (never placed yet)       {r.pending}",
        f"  cancelled before placement       {r.cancelled_unplaced}",
        f"  start window expired unplaced    {r.expired_unplaced}",
        f"  check: placed + pending + refused + cancelled + expired = "
        f"{r.placed + r.pending + r.refused + r.cancelled_unplaced + r.expired_unplaced} = booked {r.booked}",
        f"  completed                        {r.completed}",
        f"  still running at the end         {r.running}",
        f"  failed over (node failed)        {r.failed_over_jobs} jobs, {r.failed_leases} leases; "
        f"{state.crashes} node crashes",
        f"  preempted (interruptible outbid) {r.preempted_jobs} jobs, {r.preempted_leases} leases",
        f"  failed (retry budget spent)      {r.failed - r.expired_unplaced}",
        f"  wait to placement                median {r.median_wait_s:.0f} s, p95 {r.p95_wait_s:.0f} s",
        "",
        "GPU utilisation (GPUs held by leases / listed online GPUs, sampled every tick)",
        *(f"  {tier:<12} {value:6.1%}" for tier, value in r.utilisation.items()),
        f"  {'all':<12} {r.utilisation_all:6.1%}",
        "",
        "Money",
        f"  revenue (customers charged)      {_usd(r.charged)} = usage {_usd(r.usage_charged)} "
        f"+ reserved contracts {_usd(r.contracts_charged)}",
        f"  platform fees                    {_usd(r.fees)}",
        f"  reserve                          {_usd(r.reserve)}",
        f"  provider share                   {_usd(r.provider_share)} (before financing withholding)",
        f"  provider payouts                 {_usd(r.payouts)} ({r.payouts_count} payouts)",
        f"  SLA credits                      {_usd(r.sla_credits)} ({r.sla_count} credits)",
        f"  financing repaid                 {_usd(r.financing_repaid)}",
        *(f"  financing: {line}" for line in state.financing),
        f"  money in  (top-ups, lender capital)            {_usd(r.money_in)}",
        f"  money out (payouts, disbursed advances)        {_usd(r.money_out)}",
        *(f"    balance {kind:<22} {_usd(value)}" for kind, value in r.balances.items()),
        f"  check: in {_usd(r.money_in)} = out {_usd(r.money_out)} + balances {_usd(r.balances_total)}"
        f" -> {'OK' if r.money_in == r.money_out + r.balances_total else 'MISMATCH'}",
        f"  escrow {_usd(r.escrow_balance)} vs holds of open jobs {_usd(r.open_holds)} (running jobs' holds are net of "
        f"what was already charged from escrow)",
        f"  ledger_check: {'OK' if r.ledger_ok else 'FAILED'}",
        *(f"    VIOLATION {v}" for v in r.ledger_violations),
        "",
        f"Run: {state.ticks} ticks, {state.agent_steps} agent steps, {state.agent_requests} agent API requests, "
        f"{state.rounds} matching rounds; setup {state.setup_s:.1f} s, loop {state.loop_s:.1f} s, "
        f"total {wall_s:.1f} s wall",
        "  loop CPU by part: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(state.phases.items())),
    ]
    out[-1:-1] = [f"ANOMALY: {a}" for a in state.anomalies]
    problems = r.identities()
    out += [f"RECONCILIATION FAILED: {p}" for p in problems]
    out.append(r.last_line())
    return out
