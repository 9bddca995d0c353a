"""The agent served by the server: a wheel that pip installs (with both console scripts), the install script
(virtualenv, token file, systemd unit with restart) run against a scratch prefix, the per-node install page
(its provider only) linked from the token page, and `rigshift-agent doctor`."""

import os
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rigshift_agent import doctor as doctor_module
from rigshift_agent.cli import main as agent_main

from marketplace.services.agent_dist import agent_version, agent_wheel, agent_wheel_build
from tests.factories import NodeFactory, ProviderFactory

pytestmark = pytest.mark.django_db


def test_wheel_is_served_with_its_version_and_installs(tmp_path: Path) -> None:
    wheel = agent_wheel()
    assert wheel.filename == f"rigshift_agent-{agent_version()}-py3-none-any.whl"
    assert agent_wheel_build().content == wheel.content  # reproducible
    response = Client().get(f"/agent/{wheel.filename}")
    assert response.status_code == 200 and response["X-Content-SHA256"] == wheel.sha256
    names = zipfile.ZipFile(BytesIO(response.content)).namelist()
    assert "rigshift_agent/runner.py" in names and "rigshift_agent/data/pci.ids" in names
    assert not any("__pycache__" in n for n in names)
    assert Client().get("/agent/other-1.0-py3-none-any.whl").status_code == 404
    path = tmp_path / wheel.filename
    path.write_bytes(response.content)
    target = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (target / "bin" / "rigshift-agent").exists() and (target / "bin" / "rigshift").exists()
    check = subprocess.run(
        [sys.executable, "-c", "import rigshift_agent, rigshift_cli; print(rigshift_agent.__version__)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert check.stdout.strip() == agent_version()


def test_install_script_sets_up_venv_token_and_systemd_unit(tmp_path: Path) -> None:
    script = Client().get("/agent/install.sh")
    assert script.status_code == 200
    text = script.content.decode()
    assert "python3 -m venv" in text and "Restart=always" in text and agent_wheel().filename in text
    assert subprocess.run(["bash", "-n"], input=text, text=True, check=False).returncode == 0
    # Run it against a scratch prefix with a fake python3/pip: it writes the token file and the unit.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text(
        '#!/bin/sh\nif [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin"; '
        "printf '#!/bin/sh\\nexit 0\\n' > \"$3/bin/pip\"; "
        "printf '#!/bin/sh\\necho doctor ran\\n' > \"$3/bin/rigshift-agent\"; "
        'chmod +x "$3/bin/pip" "$3/bin/rigshift-agent"; fi\nexit 0\n'
    )
    (fake / "python3").chmod(0o755)
    env = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "RIGSHIFT_NODE_TOKEN": "rsn_test",
        "RIGSHIFT_AGENT_PREFIX": str(tmp_path / "opt"),
        "RIGSHIFT_AGENT_STATE_DIR": str(tmp_path / "state"),
        "RIGSHIFT_SYSTEMD_DIR": str(tmp_path / "systemd"),
        "RIGSHIFT_AGENT_ENV_FILE": str(tmp_path / "etc" / "rigshift-agent.env"),
        "RIGSHIFT_NO_SYSTEMCTL": "1",
    }
    done = subprocess.run(["bash"], input=text, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "doctor ran" in done.stdout
    token_file = tmp_path / "etc" / "rigshift-agent.env"
    assert "RIGSHIFT_NODE_TOKEN=rsn_test" in token_file.read_text() and oct(token_file.stat().st_mode)[-3:] == "600"
    unit = (tmp_path / "systemd" / "rigshift-agent.service").read_text()
    assert "Restart=always" in unit and f"EnvironmentFile={token_file}" in unit
    assert f"{tmp_path}/opt/bin/rigshift-agent run --server ${{RIGSHIFT_SERVER}}" in unit
    refused = subprocess.run(
        ["bash"], input=text, text=True, env={**env, "RIGSHIFT_NODE_TOKEN": "rsu_x"}, capture_output=True
    )
    assert refused.returncode == 2


def test_install_page_is_the_providers_and_linked_from_the_token_page() -> None:
    provider: Any = ProviderFactory()
    node: Any = NodeFactory(provider=provider)
    page = Client()
    page.force_login(provider.user)
    body = page.get(f"/provider/nodes/{node.pk}/install/").content.decode()
    assert "install.sh | sudo RIGSHIFT_NODE_TOKEN=" in body and agent_wheel().filename in body
    other = Client()
    other.force_login(ProviderFactory().user)
    assert other.get(f"/provider/nodes/{node.pk}/install/").status_code == 404
    rotated = page.post(f"/provider/nodes/{node.pk}/token/rotate/").content.decode()
    assert (
        f"/provider/nodes/{node.pk}/install/" in rotated
        and "/agent/install.sh | sudo RIGSHIFT_NODE_TOKEN=rsn_" in rotated
    )


def test_doctor_says_what_to_fix(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(doctor_module.shutil, "which", lambda name: None)
    assert agent_main(["doctor", "--port-range", "45000-45009"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] NVIDIA driver: nvidia-smi not found" in out and "fix: install the NVIDIA driver" in out
    assert "[FAIL] Docker: docker not found" in out
    assert "[OK] Host ports 45000-45009" in out

    def fake_run(args: list[str]) -> tuple[int, str]:
        if args[0] == "nvidia-smi":
            return 0, "NVIDIA GeForce RTX 4090, 550.54"
        return 0, '{"nvidia": {"path": "nvidia-container-runtime"}, "runc": {"path": "runc"}}'

    monkeypatch.setattr(doctor_module.shutil, "which", lambda name: f"/usr/bin/{name}")
    checks = {c.name: c for c in doctor_module.doctor(port_range=(45000, 45009), run=fake_run)}
    assert checks["NVIDIA driver"].ok and checks["Docker"].ok and checks["Docker GPU support"].ok
    with pytest.raises(SystemExit) as bad:
        agent_main(["doctor", "--port-range", "9-1"])
    assert bad.value.code == 2
