"""`rigshift-agent doctor`: is this machine ready to run leases? Each check says OK, or what is wrong and how to
fix it: the NVIDIA driver, NVML, Docker, Docker's GPU support, and the node's host port range."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from rigshift_agent.ports import ports_unbindable


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


Runner = Callable[[list[str]], tuple[int, str]]


def _run(args: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


def check_driver(run: Runner) -> Check:
    if shutil.which("nvidia-smi") is None:
        return Check("NVIDIA driver", False, "nvidia-smi not found", "install the NVIDIA driver (e.g. 550) and reboot")
    code, out = run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    if code != 0 or not out:
        return Check("NVIDIA driver", False, out[:200] or "nvidia-smi failed", "reinstall the driver; check dmesg")
    lines = out.splitlines()
    return Check("NVIDIA driver", True, f"{len(lines)} GPU(s): {lines[0]}")


def check_nvml() -> Check:
    try:
        import pynvml  # optional dependency

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except ImportError:
        return Check("NVML", False, "the nvidia-ml-py package is missing", "pip install nvidia-ml-py (in the venv)")
    except Exception as exc:  # noqa: BLE001 — NVMLError and friends
        return Check("NVML", False, str(exc)[:200], "the driver's libnvidia-ml.so must match the kernel module")
    return Check("NVML", True, f"{count} device(s)")


def check_docker(run: Runner) -> list[Check]:
    if shutil.which("docker") is None:
        fix = "install Docker Engine (https://docs.docker.com/engine/install/)"
        return [Check("Docker", False, "docker not found", fix)]
    code, out = run(["docker", "info", "--format", "{{json .Runtimes}}"])
    if code != 0:
        fix = "start the daemon (systemctl start docker) and run the agent as root or in the docker group"
        return [Check("Docker", False, out[:200] or "docker info failed", fix)]
    try:
        runtimes = json.loads(out.splitlines()[-1]) if out else {}
    except ValueError:
        runtimes = {}
    docker = Check("Docker", True, "the daemon answers")
    if "nvidia" in runtimes or shutil.which("nvidia-container-runtime") or shutil.which("nvidia-ctk"):
        return [docker, Check("Docker GPU support", True, "NVIDIA container toolkit present")]
    fix = (
        "install nvidia-container-toolkit, then: nvidia-ctk runtime configure --runtime=docker "
        "&& systemctl restart docker"
    )
    return [docker, Check("Docker GPU support", False, "no NVIDIA runtime in docker info", fix)]


def check_ports(port_range: tuple[int, int]) -> Check:
    problem = ports_unbindable(port_range)
    name = f"Host ports {port_range[0]}-{port_range[1]}"
    if problem:
        fix = "free those ports or choose another range in the node's connection settings"
        return Check(name, False, problem, fix)
    return Check(name, True, "can be bound; forward them from your router to this machine")


def doctor(*, port_range: tuple[int, int], run: Runner = _run) -> list[Check]:
    return [check_driver(run), check_nvml(), *check_docker(run), check_ports(port_range)]


def report(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"[{'OK' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append(
        "Ready to run leases." if not failed else f"{failed} problem(s) to fix before this machine takes work."
    )
    return "\n".join(lines)
