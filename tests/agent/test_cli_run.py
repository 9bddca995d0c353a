"""`rigshift-agent run` as a real process against the live server: registers, heartbeats, stops cleanly on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from marketplace.models import Node, NodeHeartbeat, NodeStatus
from marketplace.services.nodes import node_register
from tests.factories import GPUModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)
AGENT = [sys.executable, "-m", "rigshift_agent.cli", "run"]
FAST = ["--interval", "0.5"]


def test_agent_process_brings_its_node_online_and_keeps_state(live_server: Any, tmp_path: Path) -> None:
    GPUModelFactory(slug="rtx-4090")
    node, token = node_register(
        provider=ProviderFactory(), name="rig-1", region="eu", country="DE", gpu_model_slug="rtx-4090", gpu_count=8
    )
    state_file = tmp_path / "state.json"
    process = subprocess.Popen(
        [*AGENT, "--server", live_server.url, "--simulate", "8xRTX4090", "--state-file", str(state_file), *FAST],
        env={**os.environ, "RIGSHIFT_NODE_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and NodeHeartbeat.objects.filter(node=node).count() < 3:
            assert process.poll() is None
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    node.refresh_from_db()
    assert node.status == NodeStatus.ONLINE
    assert node.agent_registered_at is not None
    assert node.hardware_mismatch == ""
    assert node.dlperf is not None and node.dlperf > 100
    assert len(node.agent_report["gpus"]) == 8
    beats = NodeHeartbeat.objects.filter(node=node).count()
    assert beats >= 3
    assert json.loads(state_file.read_text())["seq"] == beats  # every heartbeat sent was acknowledged and saved


def test_agent_with_a_wrong_token_exits_1(live_server: Any, tmp_path: Path) -> None:
    done = subprocess.run(
        [*AGENT, "--server", live_server.url, "--simulate", "1xT4", "--token", "rsn_nope", "--state-file", "s.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "refused the node token" in done.stderr
    assert not Node.objects.filter(status=NodeStatus.ONLINE).exists()
