# mypy: disable-error-code="misc"
"""CPU cores, RAM and disk are consumable node totals: leases take GPUs × the job's per-GPU minimums, and
no node is ever overcommitted, in the engine (a property test over random markets and several rounds), at
the database-side check of a round's commit and of a manual assignment, and in offer search."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.engine import Preemptible, match
from broker.engine.build import make_jobs, make_models, make_nodes
from broker.models import Job, JobState, Lease
from broker.selectors.offers import offer_search
from broker.services.leases import LeasePlan, lease_create, leases_fit_node_resources
from broker.services.matching import match_round_run
from common.errors import Conflict
from tests.factories import CustomerFactory, NodeFactory

MODELS = make_models([{"vram": 24}, {"vram": 80}])


def test_two_jobs_cannot_together_exceed_a_nodes_cpu():
    # 4 GPUs, 16 cores: a 1-GPU job asking 12 cores leaves 4 — the next 1-GPU job asking 8 must wait.
    nodes = make_nodes([{"gpu_count": 4, "cpu": 16}])
    jobs = make_jobs([{"min_cpu_per_gpu": 12}, {"min_cpu_per_gpu": 8}], n_models=2, n_regions=6)
    result = match(jobs=jobs, nodes=nodes, models=MODELS, now=0.0)
    assert [p.job_idx for p in result.placements] == [0]
    assert result.reasons == {1: "contention"}


def test_per_gpu_minimum_is_consumed_as_a_total():
    # 12 cores for one GPU fits a 2-GPU 16-core node (the old per-GPU ratio check refused it).
    nodes = make_nodes([{"gpu_count": 2, "cpu": 16, "ram": 64, "disk": 100}])
    ok = make_jobs([{"min_cpu_per_gpu": 12, "min_ram_per_gpu": 60}], n_models=2, n_regions=6)
    assert len(match(jobs=ok, nodes=nodes, models=MODELS, now=0.0).placements) == 1
    too_big = make_jobs([{"gpu_count": 2, "min_disk_per_gpu": 60}], n_models=2, n_regions=6)
    assert match(jobs=too_big, nodes=nodes, models=MODELS, now=0.0).reasons == {0: "disk"}


def test_preemption_frees_the_preempted_leases_resources():
    nodes = make_nodes([{"gpu_count": 2, "cpu": 16}], busy={0: [3600.0, -np.inf]})
    nodes.cpu_free[:] = 4  # the interruptible lease on slot 0 holds 12 cores
    jobs = make_jobs([{"min_cpu_per_gpu": 10}], n_models=2, n_regions=6)
    pre = Preemptible(
        np.array([7]), np.array([0]), np.array([1.0]), np.array([1]), [[0]], resources=np.array([[12.0], [0], [0]])
    )
    result = match(jobs=jobs, nodes=nodes, models=MODELS, now=0.0, preemptible=pre)
    assert len(result.placements) == 1 and result.placements[0].preempts == [7]
    without = Preemptible(np.array([7]), np.array([0]), np.array([1.0]), np.array([1]), [[0]])
    nodes.cpu_free[:] = 4
    assert match(jobs=jobs, nodes=nodes, models=MODELS, now=0.0, preemptible=without).placements == []


node_st = st.fixed_dictionaries(
    {
        "model": st.integers(0, 1),
        "gpu_count": st.sampled_from([1, 2, 4, 8]),
        "cpu": st.sampled_from([4.0, 8.0, 16.0, 32.0]),
        "ram": st.sampled_from([16.0, 64.0, 256.0]),
        "disk": st.sampled_from([100.0, 500.0, 2000.0]),
    }
)
job_st = st.fixed_dictionaries(
    {
        "gpu_count": st.sampled_from([1, 1, 1, 2, 4]),
        "min_cpu_per_gpu": st.sampled_from([0.0, 0.0, 2.0, 4.0, 8.0]),
        "min_ram_per_gpu": st.sampled_from([0.0, 8.0, 32.0]),
        "min_disk_per_gpu": st.sampled_from([0.0, 50.0, 200.0]),
        "models": st.none() | st.just([1]),
        "mode": st.sampled_from([0, 0, 1]),
        "price_limit": st.just(5_000_000.0),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nodes=st.lists(node_st, min_size=1, max_size=8),
    rounds=st.lists(st.lists(job_st, min_size=1, max_size=20), min_size=1, max_size=3),
)
def test_property_no_node_overcommitted_over_rounds(nodes, rounds):
    """Several rounds on one market: each round sees what the earlier ones placed (slots busy, resources
    taken); at the end no node's CPU, RAM or disk is used beyond its total, and no GPU slot twice."""
    totals = np.array([[n["cpu"], n["ram"], n["disk"]] for n in nodes]).T
    used = np.zeros_like(totals)
    busy: dict[int, list[float]] = {}
    for specs in rounds:
        market = make_nodes(nodes, busy=busy)
        market.cpu_free, market.ram_free, market.disk_free = (totals - used).copy()
        jobs = make_jobs(specs, n_models=2, n_regions=6)
        result = match(jobs=jobs, nodes=market, models=MODELS, now=0.0)
        for p in result.placements:
            spec = specs[p.job_idx]
            g = spec["gpu_count"]
            used[:, p.node_idx] += [
                g * spec["min_cpu_per_gpu"],
                g * spec["min_ram_per_gpu"],
                g * spec["min_disk_per_gpu"],
            ]
            row = busy.setdefault(p.node_idx, [-np.inf] * 8)
            for s in p.slots:
                assert row[s] == -np.inf, "a GPU slot was handed out twice"
                row[s] = 3600.0
        assert (used <= totals + 1e-9).all(), "a node's CPU, RAM or disk is overcommitted"


# -- the database side -------------------------------------------------------------------------------


def _job(customer, **kw):
    defaults = {"name": "j", "gpu_count": 1, "image": "img", "duration_seconds": 3600, "max_price_micros": 5_000_000}
    defaults.update(kw)
    return Job.objects.create(customer=customer, **defaults)


@pytest.mark.django_db
def test_round_stores_lease_resources_and_never_overcommits():
    node = NodeFactory(gpu_count=4, cpu_cores=16, ram_gb=64, disk_gb=1000)
    c = CustomerFactory()
    a = _job(c, min_cpu_cores_per_gpu=12, min_ram_gb_per_gpu=16)
    b = _job(c, min_cpu_cores_per_gpu=8)
    match_round_run()
    lease = Lease.objects.get(job=a)
    assert (lease.node_id, lease.cpu_cores, lease.ram_gb, lease.disk_gb) == (node.pk, 12, 16, 0)
    b.refresh_from_db()
    assert b.state == JobState.PENDING  # the cores went to `a` in this round ("contention")
    match_round_run()
    b.refresh_from_db()
    assert b.state == JobState.PENDING and "CPU" in b.pending_reason
    # Offers show what is free: 4 cores, 48 GB RAM; search filters on free amounts.
    (offer,) = offer_search()
    assert (offer.cpu_cores, offer.ram, offer.disk, offer.num_gpus) == (4, 48, 1000, 3)
    assert offer_search(q="cpu_cores>=8") == []


@pytest.mark.django_db
def test_commit_check_refuses_a_plan_that_would_overcommit():
    node = NodeFactory(gpu_count=4, cpu_cores=16)
    c = CustomerFactory()
    now = timezone.now()
    held = _job(c, min_cpu_cores_per_gpu=10)
    lease_create(
        job_id=held.pk,
        node_id=node.pk,
        gpu_slots=[0],
        price_micros=node.price_micros,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
    )
    plan = LeasePlan(0, node.pk, [1], 1, now + timedelta(minutes=30), now + timedelta(hours=2), cpu_cores=8)
    later = LeasePlan(0, node.pk, [2], 1, now + timedelta(hours=1), now + timedelta(hours=2), cpu_cores=6)
    kept, refused = leases_fit_node_resources(plans=[plan, later])
    assert refused == [plan] and kept == [later]
    # A manual assignment that would overcommit is a clear 409.
    other = _job(c, min_cpu_cores_per_gpu=8)
    with pytest.raises(Conflict, match="CPU cores"):
        lease_create(
            job_id=other.pk,
            node_id=node.pk,
            gpu_slots=[1],
            price_micros=node.price_micros,
            starts_at=now,
            ends_at=now + timedelta(hours=1),
        )
