"""The Alibaba GPU trace ships with the repository (data/alibaba-gpu-2023/) and the one loader finds it there."""

from pathlib import Path

from simulator.trace import trace_dir, trace_gpu_tasks, trace_nodes

ROOT = Path(__file__).resolve().parents[2]


def test_the_trace_is_read_from_inside_the_repository() -> None:
    folder = trace_dir().resolve()
    assert folder == ROOT / "data" / "alibaba-gpu-2023"
    for name in ("README.md", "openb_node_list_gpu_node.csv", "openb_pod_list_default.csv"):
        assert (folder / name).is_file(), name


def test_nodes_and_gpu_tasks_match_the_documented_shape() -> None:
    nodes = trace_nodes()
    assert len(nodes) == 1213  # data/README.md: 1,213 GPU nodes, 6,212 GPUs
    assert sum(n.gpu_count for n in nodes) == 6212
    assert {"G2", "T4", "V100M32"} <= {n.model_code for n in nodes}
    tasks = trace_gpu_tasks()
    assert len(tasks) == 7064  # of 8,152 tasks, those asking for at least one GPU
    assert {t.gpu_count for t in tasks} <= {1, 2, 4, 8}
    assert all(60 <= t.duration_s <= 7 * 86400 and t.wait_s >= 0 for t in tasks)
    assert sum(t.gpu_count == 1 for t in tasks) / len(tasks) > 0.95  # mostly one (fractional) GPU
