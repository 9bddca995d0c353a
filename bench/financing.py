"""Financing figures of issue 13: `python -m bench.financing [--scenario stress|base] [--days 365] [--seed 7]`.

Runs `manage.py simulate --scenario … --days …` (a financing year in a throwaway database, simulator/finance_year.py)
and `manage.py seed_demo` on a fresh throwaway SQLite file, each in its own process, and prints their timings; the
last line is the simulation's own (`advances=… repaid=… defaulted=… lender_return_pct=… fraud_funded=… ledger_ok=1`)
followed by `seed_demo_s=…`, `seed_demo_cpu_s=…`, `year_s=…` and `year_cpu_s=…` on it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANAGE = str(ROOT / "manage.py")


def _timed(args: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, MANAGE, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode})")
    return done.stdout, wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=["stress", "base"], default="stress")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-seed", action="store_true", help="time only the financing year")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    seed_part = ""
    if not args.skip_seed:
        with tempfile.TemporaryDirectory() as var:
            seed_env = env | {"DJANGO_DEBUG": "1", "RIGSHIFT_VAR_DIR": var}
            _timed(["migrate", "--noinput", "-v0"], seed_env)
            _out, seed_s, seed_cpu = _timed(["seed_demo"], seed_env)
        seed_part = f" seed_demo_s={seed_s:.1f} seed_demo_cpu_s={seed_cpu:.1f}"
        print(f"seed_demo: {seed_s:.1f} s wall, {seed_cpu:.1f} s CPU")
    out, year_s, year_cpu = _timed(
        ["simulate", "--scenario", args.scenario, "--days", str(args.days), "--seed", str(args.seed)], env
    )
    lines = out.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    print(f"{lines[-1]}{seed_part} year_s={year_s:.1f} year_cpu_s={year_cpu:.1f}")


if __name__ == "__main__":
    main()
