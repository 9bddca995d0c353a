"""The simulated market's make-up: provider fleets, customer demand, and the job mix of the real trace.

Fleets follow the pivot's facts: most mining GPUs (4–8 GB cards, CMP and Polaris parts) are unsuitable for AI
work; a minority of providers own AI-grade cards (RTX 3090/4090 class), and a few have data-centre parts.
Jobs take GPU counts and durations from the Alibaba GPU trace (simulator/trace.py; a fractional GPU is one whole
GPU), about a third are constrained to GPU models, and a third are interruptible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from rigshift_agent.detect import simulate

from marketplace.services.gpu_names import match_slug

# (simulate profile model, GPUs per rig) — what mining farms are made of: never listed, never placed.
MINING_RIGS: tuple[tuple[str, int], ...] = (
    ("RX580", 8),
    ("RX580", 6),
    ("RX5700XT", 6),
    ("GTX1070", 8),
    ("RTX3060TI", 6),
    ("RTX3070", 8),
    ("GTX1080TI", 6),
)
# AI-grade rigs a repurposing miner may have, with weights.
AI_RIGS: tuple[tuple[str, int, float], ...] = (
    ("RTX3090", 6, 4.0),
    ("RTX3090", 8, 2.0),
    ("RTX4090", 8, 3.0),
    ("RTX4090", 4, 2.0),
    ("RTX3080", 8, 1.0),
    ("RTXA5000", 4, 1.0),
    ("RTXA6000", 4, 1.0),
    ("RTX5090", 4, 1.0),
)
# Data-centre nodes (a few providers have gone all the way).
DC_RIGS: tuple[tuple[str, int, float], ...] = (
    ("A10080GB", 8, 3.0),
    ("H100SXM", 8, 2.0),
    ("L40S", 8, 2.0),
    ("A10040GB", 8, 1.0),
)
# The upgrade a financed provider buys (GPUs per new node).
UPGRADE = ("RTX4090", 4)

REGIONS: tuple[tuple[str, str, float], ...] = (
    ("us", "US", 4.0),
    ("eu", "DE", 2.0),
    ("eu", "SE", 1.0),
    ("asia", "JP", 1.5),
    ("asia", "SG", 0.5),
    ("sa", "BR", 0.7),
    ("oceania", "AU", 0.3),
)

# Demand: mean bookings per customer per hour (each customer draws its own rate around it).
BOOKINGS_PER_CUSTOMER_HOUR = 1.4
MAX_JOB_HOURS = 12.0
CONSTRAINED_SHARE = 1 / 3
INTERRUPTIBLE_SHARE = 0.3


def slug_for_profile(model_key: str) -> str:
    """The catalog slug of a simulate-profile model, as the agent would name it."""
    gpu = simulate(f"1x{model_key}").gpus[0]
    slug = match_slug(f"{gpu.name} {round(gpu.vram_gb)}GB") or match_slug(gpu.name)
    if slug is None:
        raise ValueError(f"{model_key}: {gpu.name!r} is not in the GPU catalog")
    return slug


@dataclass
class RigPlan:
    model_key: str
    gpus: int
    region: str
    country: str
    ai_grade: bool

    @property
    def profile(self) -> str:
        return f"{self.gpus}x{self.model_key}"


@dataclass
class ProviderPlan:
    index: int
    country: str
    rigs: list[RigPlan] = field(default_factory=list)


def _weighted(rng: random.Random, items: tuple[tuple[str, int, float], ...]) -> tuple[str, int]:
    model, gpus, _ = rng.choices(items, weights=[w for *_, w in items])[0]
    return model, gpus


def providers_plan(*, count: int, rng: random.Random) -> list[ProviderPlan]:
    """Each provider: 1–5 mining rigs; ~25% also have one or two AI-grade rigs; ~6% a data-centre node.

    At least one provider has AI-grade hardware, so even a tiny market can place work."""
    plans = []
    for i in range(count):
        _, country, _ = rng.choices(REGIONS, weights=[w for *_, w in REGIONS])[0]
        region = next(r for r, c, _ in REGIONS if c == country)
        plan = ProviderPlan(index=i, country=country)
        for _ in range(rng.randint(1, 5)):
            model, gpus = rng.choice(MINING_RIGS)
            plan.rigs.append(RigPlan(model, gpus, region, country, ai_grade=False))
        if rng.random() < 0.25 or i == 0:
            for _ in range(1 if rng.random() < 0.75 else 2):
                model, gpus = _weighted(rng, AI_RIGS)
                plan.rigs.append(RigPlan(model, gpus, region, country, ai_grade=True))
        if rng.random() < 0.06 or (i == 1 and count > 1):
            model, gpus = _weighted(rng, DC_RIGS)
            plan.rigs.append(RigPlan(model, gpus, region, country, ai_grade=True))
        plans.append(plan)
    return plans


@dataclass(frozen=True)
class JobPlan:
    at_s: float  # seconds after the start
    customer: int
    gpu_count: int
    duration_s: int
    constrained: bool  # to GPU models (else by tier)
    interruptible: bool
    regions: bool  # restricted to one region
    price_factor: float
    cancel_after_s: float | None  # cancel if still pending after this long


def jobs_plan(
    *, customers: int, hours: float, tasks: list[tuple[int, int]], rng: random.Random
) -> tuple[list[JobPlan], list[float]]:
    """Bookings over the run: a Poisson process per customer (its own rate), with a day/night swing; GPU count and
    duration drawn from the trace's GPU tasks. Returns the plans (by time) and each customer's rate."""
    rates = [BOOKINGS_PER_CUSTOMER_HOUR * rng.lognormvariate(0, 0.5) for _ in range(customers)]
    plans: list[JobPlan] = []
    horizon = hours * 3600
    for c, rate in enumerate(rates):
        t = 0.0
        peak = rate * 1.5  # thinning: the rate swings ±50% over the day
        while True:
            t += rng.expovariate(peak / 3600)
            if t >= horizon:
                break
            if rng.random() > (1 + 0.5 * math.sin(2 * math.pi * t / 86400)) / 1.5:
                continue
            gpus, duration = rng.choice(tasks)
            plans.append(
                JobPlan(
                    at_s=t,
                    customer=c,
                    gpu_count=gpus,
                    duration_s=max(60, min(duration, int(MAX_JOB_HOURS * 3600))),
                    constrained=rng.random() < CONSTRAINED_SHARE,
                    interruptible=rng.random() < INTERRUPTIBLE_SHARE,
                    regions=rng.random() < 0.2,
                    price_factor=rng.uniform(0.9, 1.8),
                    cancel_after_s=rng.uniform(1800, 4 * 3600) if rng.random() < 0.35 else None,
                )
            )
    plans.sort(key=lambda p: (p.at_s, p.customer))
    return plans, rates


def trace_mix() -> list[tuple[int, int]]:
    """(GPU count, duration s) of the trace's GPU tasks (fractional GPU → 1)."""
    from simulator.trace import trace_gpu_tasks

    return [(t.gpu_count, t.duration_s) for t in trace_gpu_tasks()]
