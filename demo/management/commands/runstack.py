"""`manage.py runstack`: the whole product in one terminal — web server, Celery worker, Celery beat and the
demo market's simulated agents (rigshift-agent fleet, in simulate mode, through the agent API).

Each child runs in its own process group (session), so Ctrl-C reaches only runstack, which then stops every
child: SIGTERM to each group, a grace period, then SIGKILL to whatever is left. If a child dies on its own,
runstack says which and how, stops the others and exits non-zero.

Children's output is shown prefixed with their name; the web server's access lines for the agent API (a few
per second with the demo agents) are hidden unless --verbose.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.seed import DEMO_PASSWORD, demo_fleet

GRACE_S = 10.0
HEALTH_TIMEOUT_S = 90.0
_QUIET = re.compile(r'"(GET|POST) /(api/v1/agent/|healthz)[^"]*" [23]\d\d ')


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    pgid: int


class Command(BaseCommand):
    help = "Start the web server, a Celery worker, Celery beat and the demo agents; Ctrl-C stops them all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-agents", action="store_true", help="do not start the demo agents")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
        parser.add_argument("--agent-interval", type=float, help="demo agents' heartbeat interval (default: server's)")
        parser.add_argument("--verbose", action="store_true", help="show every access line of the web server")

    # -------------------------------------------------------------------------------------------- handle
    def handle(self, *args: Any, **options: Any) -> None:
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.verbose = bool(options["verbose"])
        self.out_lock = threading.RLock()  # re-entrant: the signal handler may print while main holds it
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        host, port = options["host"], options["port"]
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "", "*") else host  # noqa: S104 — comparing, not binding
        base = f"http://{probe_host}:{port}"
        failure = ""
        try:
            self._start_services(host=host, port=port, concurrency=options["concurrency"])
            failure = self._wait_healthy(base)
            if not failure and not options["no_agents"] and not self.stopping.is_set():
                self._start_agents(base, interval=options["agent_interval"])
            if not failure and not self.stopping.is_set():
                self._banner(base)
                failure = self._supervise()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failure:
            raise CommandError(failure)
        self._say("runstack: every process stopped")

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.stopping.is_set():
            self._say(f"runstack: {signal.Signals(signum).name} received, stopping every process ...")
        self.stopping.set()

    # -------------------------------------------------------------------------------------------- children
    def _spawn(self, name: str, argv: list[str], *, stdin: bytes | None = None) -> Child:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            argv,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C reaches runstack, which stops the group
        )
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            process.stdin.close()
        child = Child(name=name, process=process, pgid=os.getpgid(process.pid))
        self.children.append(child)
        assert process.stdout is not None
        threading.Thread(target=self._pump, args=(name, process.stdout), daemon=True).start()
        self._say(f"runstack: started {name} pid={process.pid} pgid={child.pgid}")
        return child

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if not self.verbose and _QUIET.search(line):
                continue
            self._say(f"{name:>6} | {line}")

    def _say(self, text: str) -> None:
        with self.out_lock:
            self.stdout.write(text)
            self.stdout.flush()

    def _start_services(self, *, host: str, port: int, concurrency: int) -> None:
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._spawn("web", [python, manage, "runserver", addr, "--noreload", "--skip-checks"])
        celery = [python, "-m", "celery", "-A", "config"]
        worker = [*celery, "worker", "-l", "info", "--concurrency", str(concurrency), "-n", f"rigshift-{port}@%h"]
        if not settings.REDIS_URL:  # the filesystem transport has no broadcast: skip gossip/mingle/heartbeat
            worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self._spawn("worker", worker)
        schedule = str(Path(settings.CELERY_BEAT_SCHEDULE_FILENAME))
        self._spawn("beat", [*celery, "beat", "-l", "info", "-s", schedule, "--pidfile="])

    def _start_agents(self, base: str, *, interval: float | None) -> None:
        fleet = demo_fleet()
        if not fleet:
            self._say("runstack: no demo nodes (run `manage.py seed_demo`): demo agents not started")
            return
        state_dir = Path(settings.VAR_DIR) / "agents"
        config = {"server": base, "state_dir": str(state_dir), "nodes": fleet}
        argv = [sys.executable, "-m", "rigshift_agent.cli", "fleet", "--config", "-"]
        if interval:
            argv += ["--interval", str(interval)]
        self._spawn("agents", argv, stdin=json.dumps(config).encode())

    def _dead(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def _wait_healthy(self, base: str) -> str:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping.is_set():
            dead = self._dead()
            if dead is not None:
                return f"{dead.name} exited with code {dead.process.returncode} while starting"
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310 — our own URL
                    if response.status == 200:
                        return ""
            except (urllib.error.URLError, OSError):
                pass
            self.stopping.wait(0.3)
        return "" if self.stopping.is_set() else f"the web server did not answer {base}/healthz in time"

    def _supervise(self) -> str:
        while not self.stopping.wait(0.5):
            dead = self._dead()
            if dead is not None:
                return f"{dead.name} (pid {dead.process.pid}) exited unexpectedly with code {dead.process.returncode}"
        return ""

    def _shutdown(self) -> None:
        self.stopping.set()
        deadline = time.monotonic() + GRACE_S
        for child in reversed(self.children):  # agents first (while the web server still answers), then the rest
            if child.process.poll() is None:
                child.process.terminate()  # the leader stops its own children (prefork pool)
            if child.name == "agents":
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(timeout=GRACE_S / 2)
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(f"runstack: {child.name} did not stop in {GRACE_S:.0f}s; killing it")
        for child in self.children:  # the group may hold more than the leader (prefork pool workers)
            self._signal_group(child, signal.SIGKILL)
            if child.process.poll() is None:
                child.process.wait(timeout=5)

    @staticmethod
    def _signal_group(child: Child, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pgid, sig)

    # -------------------------------------------------------------------------------------------- banner
    def _banner(self, base: str) -> None:
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        broker = "redis" if settings.REDIS_URL else "filesystem"
        lines = [
            "",
            "RigShift is running  (Ctrl-C stops every process)",
            f"  portal      {base}/",
            f"  provider    {base}/provider/",
            f"  customer    {base}/app/",
            f"  console     {base}/console/",
            f"  admin       {base}/admin/",
            f"  API docs    {base}/api/docs/",
            f"  health      {base}/healthz",
            f"  database {database}, Celery broker {broker}",
            f"demo logins (password {DEMO_PASSWORD}): demo-provider, demo-customer, demo-lender, admin (staff)",
            "",
        ]
        self._say("\n".join(lines))
