# mypy: disable-error-code="misc"
"""Scarcity-aware placement: unconstrained work leaves the GPUs that constrained demand (pending, or
forecast from recent constrained bookings) can only be served by; the replay benchmark runs."""

import numpy as np

from broker.engine import match
from broker.engine.build import make_jobs, make_models, make_nodes
from broker.engine.scarcity import forecast_groups

MODELS = make_models([{"vram": 24}, {"vram": 16}])


def test_unconstrained_work_leaves_the_model_pending_constrained_work_needs():
    # Two 1-GPU nodes of model 1 (small: packing likes them) and an 8-GPU node of model 0. An unconstrained job
    # placed before the model-1 jobs would take a model-1 node; with scarcity it takes the big node.
    nodes = make_nodes([{"model": 1, "gpu_count": 1}, {"model": 1, "gpu_count": 1}, {"model": 0, "gpu_count": 8}])
    jobs = make_jobs([{}, {"models": [1]}, {"models": [1]}], n_models=2, n_regions=6)
    with_cost = match(jobs=jobs, nodes=nodes, models=MODELS, now=0.0)
    assert sorted((p.job_idx, p.node_idx) for p in with_cost.placements)[0] == (0, 2)
    assert len(with_cost.placements) == 3
    # (Within one round the max-flow step would re-route it anyway; across rounds only the cost does.)


def test_forecast_of_recent_constrained_bookings_protects_a_small_group():
    nodes = make_nodes([{"model": 1, "gpu_count": 1}, {"model": 0, "gpu_count": 8}])
    jobs = make_jobs([{}], n_models=2, n_regions=1)
    forecast = np.array([[0.0], [3.0]])  # three model-1 GPUs expected over the horizon
    result = match(jobs=jobs, nodes=nodes, models=MODELS, now=0.0, forecast=forecast)
    assert result.placements[0].node_idx == 1
    assert match(jobs=jobs, nodes=nodes, models=MODELS, now=0.0).placements[0].node_idx == 0


def test_forecast_is_smoothed_towards_each_groups_share():
    smoothed = forecast_groups(np.array([[10.0], [0.0]]), np.array([[90.0], [10.0]]))
    assert smoothed.tolist() == [[10.0], [1.0]]


def test_replay_benchmark_prints_its_last_line(capsys):
    from bench.replay import main

    assert main(["--seed", "1", "--compress", "100000", "--patience", "60"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    keys = [part.split("=")[0] for part in last.split()]
    assert keys == [
        "never_placed_pct",
        "firstfit_never_placed_pct",
        "bestfit_never_placed_pct",
        "constrained_wait_p99_s",
    ]
