"""`rigshift-agent`: detect | bench | run | fleet.

    rigshift-agent detect [--simulate 8xRTX4090] [--json]
    rigshift-agent bench [--json]
    rigshift-agent run --server URL --token TOKEN [--simulate PROFILE] [--state-file PATH] [--interval S]
    rigshift-agent fleet --config FILE|-      (many simulated agents in one process; the demo market uses it)
    rigshift-agent doctor [--port-range 40000-40999] [--json]   (is this machine ready? what to fix)

Exit codes: 0 success (or stopped by a signal), 1 the server refused the token (doctor: a check failed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rigshift_client import ApiClient

from rigshift_agent import __version__
from rigshift_agent.bench import bench
from rigshift_agent.detect import Hardware, detect, detect_nvidia, simulated_benchmark, simulated_challenge_tflops
from rigshift_agent.docker_executor import DockerExecutor
from rigshift_agent.doctor import doctor, report
from rigshift_agent.executor import Executor, SimulatedExecutor
from rigshift_agent.runner import AgentFatal, GpuSampler, Runner
from rigshift_agent.state import StateStore

log = logging.getLogger("rigshift_agent")
SIM_PULL_S, SIM_START_S = 4, 2  # a simulated lease shows pulling and starting for a moment


_ROW = "{:>2}  {:<14} {:>7}  {:<7} {:<10} {:>7} {:>7} {:>5}"


def _table(hw: Hardware) -> str:
    lines = [f"source: {hw.source}   driver: {hw.driver_version or '-'}   CUDA: {hw.cuda_version or '-'}"]
    lines.append(f"host: {hw.cpu_cores} CPU cores, {hw.ram_gb} GB RAM, {hw.disk_gb} GB disk")
    if not hw.gpus:
        lines.append("no GPU found (no NVIDIA driver through NVML, no rocm-smi); try --simulate 8xRTX4090")
        return "\n".join(lines)
    cols = ("#", "name", "VRAM GB", "device", "board", "power W", "temp °C", "util")
    lines.append(_ROW.format(*cols))
    for g in hw.gpus:
        board = g.board_partner or g.subsystem_vendor_id or "-"
        power = f"{g.power_limit_w:.0f}" if g.power_limit_w is not None else "-"
        temp = f"{g.temperature_c:.0f}" if g.temperature_c is not None else "-"
        util = f"{g.utilisation:.0%}" if g.utilisation is not None else "-"
        lines.append(_ROW.format(g.index, g.name, f"{g.vram_gb:.1f}", g.pci_device_id or "-", board, power, temp, util))
    return "\n".join(lines)


def cmd_detect(args: argparse.Namespace) -> int:
    try:
        hw = detect(simulate_profile=args.simulate)
    except ValueError as exc:
        print(f"rigshift-agent: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(hw.to_dict(), indent=2) if args.json else _table(hw))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    result = bench(device_index=args.device, seconds=args.seconds)
    if args.json:
        print(json.dumps(result.__dict__, indent=2))
    elif result.measured:
        print(f"{result.device}: matmul {result.tflops} TFLOPS (FP16), memory {result.mem_bandwidth_gbs} GB/s")
    else:
        print(result.note)
    return 0


def _nvml_sampler() -> GpuSampler:
    def sample(busy: set[int]) -> list[dict[str, Any]]:
        gpus, _, _ = detect_nvidia()
        return [{"index": g.index, "utilisation": g.utilisation, "temperature_c": g.temperature_c} for g in gpus]

    return sample


def build_runner(
    *,
    server: str,
    token: str,
    simulate: str | None,
    state_file: str,
    interval: float | None,
    measure: bool = True,
    name: str = "agent",
) -> Runner:
    hardware = detect(simulate_profile=simulate)
    executor: Executor
    sampler: GpuSampler | None = None
    simulated_tflops = simulated_challenge_tflops(simulate) if simulate else None
    if simulate:
        benchmark: dict[str, Any] = dict(simulated_benchmark(simulate))
        executor = SimulatedExecutor(clock=time.time, pull_s=SIM_PULL_S, start_s=SIM_START_S)
    else:
        benchmark = bench().report() if measure else {"tflops": None, "mem_bandwidth_gbs": None}
        if DockerExecutor.available():
            executor = DockerExecutor()
        else:
            log.warning("Docker is not available: leases run with the simulated executor")
            executor = SimulatedExecutor(clock=time.time)
        if hardware.source == "nvml":
            sampler = _nvml_sampler()
    return Runner(
        client=ApiClient(server=server, token=token, timeout=15.0),
        hardware=hardware,
        store=StateStore(state_file),
        executor=executor,
        benchmark=benchmark,
        clock=time.time,
        sampler=sampler,
        interval=interval,
        name=name,
        simulated_tflops=simulated_tflops,
        check_ports=not simulate,
    )


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_run(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("RIGSHIFT_NODE_TOKEN", "")
    if not token:
        print("rigshift-agent: give the node token with --token or RIGSHIFT_NODE_TOKEN", file=sys.stderr)
        return 2
    try:
        runner = build_runner(
            server=args.server,
            token=token,
            simulate=args.simulate,
            state_file=args.state_file,
            interval=args.interval,
            measure=not args.no_bench,
        )
    except ValueError as exc:
        print(f"rigshift-agent: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    _stop_on_signals(stop)
    hw = runner.hardware
    log.info("rigshift-agent %s: %d GPU(s) (%s), server %s", __version__, len(hw.gpus), hw.source, args.server)
    try:
        runner.run(stop)
    except AgentFatal as exc:
        print(f"rigshift-agent: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    """Run one simulated agent per node of the config, each in its own thread, until a signal."""
    raw = sys.stdin.read() if args.config == "-" else Path(args.config).read_text(encoding="utf-8")
    config = json.loads(raw)
    server = args.server or config["server"]
    state_dir = Path(args.state_dir or config.get("state_dir") or "agent-state")
    stop = threading.Event()
    _stop_on_signals(stop)
    threads = []
    for node in config["nodes"]:
        runner = build_runner(
            server=server,
            token=node["token"],
            simulate=node["profile"],
            state_file=str(state_dir / node.get("state_file", f"{node['name']}.json")),
            interval=args.interval,
            name=node["name"],
        )

        def loop(runner: Runner = runner) -> None:
            if stop.wait(random.uniform(0, 3)):  # stagger the first registrations
                return
            try:
                runner.run(stop)
            except AgentFatal as exc:
                log.error("%s: %s", runner.name, exc)

        thread = threading.Thread(target=loop, name=f"agent-{node['name']}", daemon=True)
        thread.start()
        threads.append(thread)
    log.info("rigshift-agent fleet: %d simulated agents against %s", len(threads), server)
    while not stop.wait(1.0):
        if not any(t.is_alive() for t in threads):
            log.error("rigshift-agent fleet: every agent stopped")
            return 1
    for thread in threads:
        thread.join(timeout=20)
    return 0


def _port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or int(low) > int(high):
        raise argparse.ArgumentTypeError("a range like 40000-40999")
    return int(low), int(high)


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = doctor(port_range=args.port_range)
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        print(report(checks))
    return 0 if all(c.ok for c in checks) else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rigshift-agent", description="RigShift node agent")
    p.add_argument("--version", action="version", version=f"rigshift-agent {__version__}")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("detect", help="show the GPUs and host this machine has")
    d.add_argument("--simulate", metavar="PROFILE", help="a simulated machine, for example 8xRTX4090 or 2xA100-80GB")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_detect)
    b = sub.add_parser("bench", help="measure matmul TFLOPS and memory bandwidth (PyTorch + CUDA)")
    b.add_argument("--device", type=int, default=0)
    b.add_argument("--seconds", type=float, default=2.0)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)
    r = sub.add_parser("run", help="register, heartbeat and run leases")
    r.add_argument("--server", default=os.environ.get("RIGSHIFT_SERVER", "http://127.0.0.1:8000"))
    r.add_argument("--token", help="the node's agent token (rsn_...); or RIGSHIFT_NODE_TOKEN")
    r.add_argument("--simulate", metavar="PROFILE")
    r.add_argument("--state-file", default=os.environ.get("RIGSHIFT_AGENT_STATE", "rigshift-agent-state.json"))
    r.add_argument("--interval", type=float, help="heartbeat interval in seconds (default: what the server says)")
    r.add_argument("--no-bench", action="store_true", help="do not measure the GPUs at start")
    r.set_defaults(func=cmd_run)
    dr = sub.add_parser("doctor", help="check the driver, NVML, Docker with GPUs and the port range; say what to fix")
    dr.add_argument(
        "--port-range", type=_port_range, default=(40000, 40999), help="the node's host ports (40000-40999)"
    )
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(func=cmd_doctor)
    f = sub.add_parser("fleet", help="many simulated agents in one process (demo market)")
    f.add_argument(
        "--config", required=True, help='JSON {"server", "nodes": [{"name", "token", "profile"}]}; - reads stdin'
    )
    f.add_argument("--server")
    f.add_argument("--state-dir")
    f.add_argument("--interval", type=float)
    f.set_defaults(func=cmd_fleet)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
