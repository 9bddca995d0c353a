"""rigshift: the customer command-line client. HTTP only (no Django import).

Configuration comes from the environment (`RIGSHIFT_SERVER`, `RIGSHIFT_TOKEN`) or from a config
file written by `rigshift login` / `rigshift signup` (`~/.config/rigshift/config.json`, or the
path in `RIGSHIFT_CONFIG`); command-line `--server`/`--token` win over both.

Exit codes: 0 success, 1 an API or connection error (the API's own message on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

import requests
from rigshift_client import ApiClient, ApiError, display

DEFAULT_SERVER = "http://127.0.0.1:8000"
API = "/api/v1"


class UsageError(Exception):
    """Bad command-line input found after argparse (exit code 2)."""


# --------------------------------------------------------------------------- configuration


def config_path() -> Path:
    override = os.environ.get("RIGSHIFT_CONFIG")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rigshift" / "config.json"


def config_load() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def config_save(data: dict[str, Any]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.chmod(0o600)  # holds a bearer token
    tmp.replace(path)
    return path


def settings_resolve(args: argparse.Namespace) -> tuple[str, str | None]:
    """(server, token): flags, then environment, then the config file."""
    stored = config_load()
    server = args.server or os.environ.get("RIGSHIFT_SERVER") or stored.get("server") or DEFAULT_SERVER
    token = args.token or os.environ.get("RIGSHIFT_TOKEN") or stored.get("token")
    return str(server).rstrip("/"), token


def client_for(args: argparse.Namespace, *, need_token: bool = True) -> ApiClient:
    server, token = settings_resolve(args)
    if need_token and not token:
        raise UsageError("no API token: set RIGSHIFT_TOKEN or run 'rigshift login --server URL --username NAME'")
    return ApiClient(server=server, token=token, timeout=args.timeout)


# --------------------------------------------------------------------------- output


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def _numeric(text: str) -> bool:
    stripped = text.replace("$", "").replace(",", "").replace("%", "").lstrip("-")
    return bool(stripped) and stripped.replace(".", "", 1).isdigit()


Column = tuple[str, Callable[[dict[str, Any]], Any]]


def col(header: str, *keys: str) -> Column:
    """A column reading the first of `keys` present in a row (dotted keys reach into nested dicts)."""

    def get(row: dict[str, Any]) -> Any:
        for key in keys:
            value: Any = row
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                return when(value)
        return None

    return header, get


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], out: TextIO) -> None:
    """Aligned columns; numbers right-aligned."""
    if not rows:
        print("(none)", file=out)
        return
    cells = [[_cell(get(row)) for _, get in columns] for row in rows]
    headers = [h for h, _ in columns]
    widths = [max(len(headers[i]), *(len(r[i]) for r in cells)) for i in range(len(columns))]
    right = [all(_numeric(r[i]) or r[i] == "-" for r in cells) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)]
        return "  ".join(parts).rstrip()

    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in cells:
        print(line(r), file=out)


def print_fields(pairs: Sequence[tuple[str, Any]], out: TextIO) -> None:
    """`label: value` lines with the labels aligned."""
    width = max((len(label) for label, _ in pairs), default=0)
    for label, value in pairs:
        print(f"{label.ljust(width)}  {_cell(value)}", file=out)


def emit_json(data: Any, out: TextIO) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str), file=out)


def money(value: Any) -> str:
    """An amount from the API ("499.997584") as "$500.00": the server's formatter (rigshift_client.display)."""
    return display.money(value)


def when(value: Any) -> Any:
    """An ISO 8601 time from the API, shortened for tables: 2026-11-27 09:44:57 (UTC when it says so)."""
    if not isinstance(value, str) or len(value) < 19 or value[10] != "T":
        return value
    short = value[:19].replace("T", " ")
    return f"{short} UTC" if value.endswith(("+00:00", "Z")) else short


def _rows(body: Any) -> list[dict[str, Any]]:
    """A list response, paginated (`results`) or not."""
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        return list(body["results"])
    if isinstance(body, list):
        return list(body)
    return []


# --------------------------------------------------------------------------- requirement flags


def add_requirement_flags(parser: argparse.ArgumentParser, *, booking: bool) -> None:
    g = parser.add_argument_group("requirements")
    g.add_argument("--gpus", type=int, default=1, help="GPUs on one node (default 1)")
    g.add_argument("--min-gpu-ram", type=float, help="minimum GPU memory in GB")
    g.add_argument("--gpu-model", action="append", default=[], help="allowed GPU model slug (repeatable)")
    g.add_argument("--min-compute-cap", type=float, help="minimum CUDA compute capability, e.g. 8.0")
    g.add_argument("--min-tier", choices=["inference", "fine_tuning", "training"], help="minimum suitability tier")
    g.add_argument("--region", action="append", default=[], help="allowed region (repeatable)")
    g.add_argument("--min-reliability", type=float, help="minimum reliability, 0 to 1")
    verified = g.add_mutually_exclusive_group()
    verified.add_argument("--verified-only", dest="verified_only", action="store_true", default=None)
    verified.add_argument("--any-node", dest="verified_only", action="store_false", help="allow unverified nodes")
    g.add_argument("--min-inet-down", type=int, help="minimum download bandwidth, Mbit/s")
    g.add_argument("--min-cpu-cores-per-gpu", type=int)
    g.add_argument("--min-ram-per-gpu", type=int, help="GB of system RAM per GPU")
    g.add_argument("--min-disk-per-gpu", type=int, help="GB of disk per GPU")
    g.add_argument("--node", type=int, help="book this node (an id from `offers`): it runs there or is refused")
    m = parser.add_argument_group("mode and duration")
    m.add_argument("--mode", choices=["on_demand", "interruptible", "reserved"], default="on_demand")
    m.add_argument(
        "--placement",
        choices=["cheapest", "perf_per_dollar", "reliable"],
        help="which fitting offer to take, never above --max-price (default cheapest)",
    )
    m.add_argument("--max-price", help="on-demand / reserved: max $ per GPU-hour, e.g. 2.50")
    m.add_argument("--bid", help="interruptible: bid $ per GPU-hour")
    m.add_argument("--earliest-start", help="ISO 8601 time, e.g. 2026-12-01T08:00:00Z")
    m.add_argument("--latest-start", help="ISO 8601 time")
    m.add_argument(
        "--hours", required=booking, help="duration in hours, e.g. 1.5" + ("" if booking else " (for the max cost)")
    )


# The jobs/quotes API's payload keys (the server's JobSpec fields, broker/jobspec.py: tests/cli/test_cli_payload.py
# checks they are the same) and the option (argparse dest) that gives each.
PAYLOAD_OPTIONS: dict[str, str] = {
    "gpu_count": "gpus",
    "min_gpu_ram": "min_gpu_ram",
    "gpu_models": "gpu_model",
    "min_compute_cap": "min_compute_cap",
    "min_tier": "min_tier",
    "regions": "region",
    "min_reliability": "min_reliability",
    "verified_only": "verified_only",
    "min_inet_down": "min_inet_down",
    "min_cpu_cores_per_gpu": "min_cpu_cores_per_gpu",
    "min_ram_gb_per_gpu": "min_ram_per_gpu",
    "min_disk_gb_per_gpu": "min_disk_per_gpu",
    "node": "node",
    "mode": "mode",
    "placement": "placement",
    "max_price": "max_price",
    "bid": "bid",
    "earliest_start": "earliest_start",
    "latest_start": "latest_start",
    "duration_hours": "hours",
    "name": "name",
    "image": "image",
    "command": "command_line",
    "env": "env",
    "ports": "port",
    "template": "template",
    "ssh": "ssh",
}
TEMPLATES = ("pytorch-jupyter", "vllm-openai", "cuda-ssh")  # the server's catalog (broker/workload_templates.py)


def job_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The flat JSON of the jobs/quotes API from the parsed options. Unset options are left out (the server's
    defaults apply); so are the workload's keys for `quote`, whose parser has no workload options."""
    data: dict[str, Any] = {}
    for key, dest in PAYLOAD_OPTIONS.items():
        value = getattr(args, dest, None)
        if key == "env" and value is not None:
            value = _env_pairs(value)
        if value is None or (isinstance(value, (list, dict)) and not value):
            continue
        data[key] = str(value) if key == "duration_hours" else (list(value) if isinstance(value, list) else value)
    return data


def _env_pairs(items: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, got {item!r}")
        env[key] = value
    return env


# --------------------------------------------------------------------------- commands

OFFER_COLUMNS: list[Column] = [
    col("NODE", "node_id"),
    col("GPU", "gpu_name"),
    col("FREE", "num_gpus"),
    col("VRAM", "gpu_ram"),
    col("TIER", "tier"),
    col("REGION", "region"),
    col("COUNTRY", "country"),
    col("RELIABILITY", "reliability"),
    col("VERIFIED", "verified"),
    col("$/GPU-HOUR", "price"),
    col("TFLOPS", "dlperf"),
    col("TFLOPS PER $/H", "dlperf_per_dollar"),
]

JOB_COLUMNS: list[Column] = [
    col("ID", "id"),
    col("NAME", "name"),
    col("STATE", "state"),
    col("GPUS", "gpu_count"),
    col("MODE", "mode"),
    col("HOURS", "duration_hours"),
    col("HELD", "held"),
    col("COST", "cost_so_far"),
    col("CREATED", "created_at"),
]


def cmd_login(args: argparse.Namespace, out: TextIO) -> int:
    server = (args.server or os.environ.get("RIGSHIFT_SERVER") or config_load().get("server") or DEFAULT_SERVER).rstrip(
        "/"
    )
    password = args.password if args.password is not None else getpass.getpass(f"Password for {args.username}: ")
    client = ApiClient(server=server, timeout=args.timeout)
    body = client.post(f"{API}/auth/token/", json={"username": args.username, "password": password})
    token = body.get("token") if isinstance(body, dict) else None
    if not token:
        raise ApiError(500, "the server did not return a token")
    path = config_save({"server": server, "token": token, "username": args.username})
    if args.json:
        emit_json({"server": server, "username": args.username, "config": str(path)}, out)
    else:
        print(f"Logged in to {server} as {args.username}; token saved to {path}", file=out)
    return 0


def cmd_signup(args: argparse.Namespace, out: TextIO) -> int:
    server = (args.server or os.environ.get("RIGSHIFT_SERVER") or DEFAULT_SERVER).rstrip("/")
    password = args.password if args.password is not None else getpass.getpass("Choose a password: ")
    client = ApiClient(server=server, timeout=args.timeout)
    payload = {"username": args.username, "password": password, "email": args.email, "company": args.company}
    body = client.post(f"{API}/customers/signup/", json=payload)
    token = body.get("token") if isinstance(body, dict) else None
    saved = None
    if token and not args.no_save:
        saved = config_save({"server": server, "token": token, "username": args.username})
    if args.json:
        emit_json({**(body if isinstance(body, dict) else {}), "config": str(saved) if saved else None}, out)
    else:
        print(f"Signed up {args.username} on {server}.", file=out)
        if saved:
            print(f"Token saved to {saved}", file=out)
        elif token:
            print(f"API token (shown once): {token}", file=out)
    return 0


def cmd_search_offers(args: argparse.Namespace, out: TextIO) -> int:
    params: dict[str, Any] = {"q": " ".join(args.query)}
    if args.order:
        params["order"] = args.order
    if args.limit:
        params["limit"] = args.limit
    body = client_for(args, need_token=False).get(f"{API}/offers/", params=params)
    if args.json:
        emit_json(body, out)
        return 0
    print_table([offer_row(r) for r in _rows(body)], OFFER_COLUMNS, out)
    return 0


def _one_decimal(value: Any) -> Any:
    return f"{float(value):.1f}" if isinstance(value, int | float) and not isinstance(value, bool) else value


def offer_row(row: dict[str, Any]) -> dict[str, Any]:
    """An offer as the pages show it: price, reliability as a percentage, tier label, benchmark to one decimal."""
    return row | {
        "price": display.price(row.get("price")),
        "reliability": display.reliability_percent(row.get("reliability")),
        "tier": display.label(row.get("tier"), "tier"),
        "dlperf": _one_decimal(row.get("dlperf")),
        "dlperf_per_dollar": _one_decimal(row.get("dlperf_per_dollar")),
    }


def cmd_quote(args: argparse.Namespace, out: TextIO) -> int:
    body = client_for(args).post(f"{API}/quotes/", json=job_payload(args))
    if args.json:
        emit_json(body, out)
        return 0
    render_quote(body, out)
    return 0


def render_quote(body: dict[str, Any], out: TextIO) -> None:
    price_range = body.get("price_range") or {}
    low, high = price_range.get("min"), price_range.get("max")
    per = "min bid" if body.get("mode") == "interruptible" else "price"
    print_fields(
        [
            ("matching nodes now", body.get("matching_nodes")),
            (
                f"{per} range / GPU-hour",
                f"{display.price(low)} - {display.price(high)}" if low is not None else "no matching offer now",
            ),
            ("estimated start", when(body.get("estimated_start")) or "unknown"),
            ("why", body.get("estimated_start_reason")),
            ("max cost (held at booking)", money(body.get("max_cost"))),
            ("gpus x hours", f"{body.get('gpu_count')} x {body.get('duration_hours') or '-'}"),
            ("mode", display.label(body.get("mode"), "mode")),
        ],
        out,
    )
    cheapest = body.get("cheapest") or []
    if cheapest:
        print("\ncheapest matching offers:", file=out)
        print_table([offer_row(r) for r in cheapest], OFFER_COLUMNS, out)


def cmd_jobs_create(args: argparse.Namespace, out: TextIO) -> int:
    data = job_payload(args)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    body = client_for(args).post(f"{API}/jobs/", json=data, headers=headers)
    if args.json:
        emit_json(body, out)
        return 0
    print(f"Booked job {body.get('id')} ({body.get('state')}); held {money(body.get('held'))} in escrow.", file=out)
    render_job(body, out)
    return 0


def cmd_jobs_list(args: argparse.Namespace, out: TextIO) -> int:
    body = client_for(args).get(f"{API}/jobs/")
    if args.json:
        emit_json(body, out)
        return 0
    rows = [
        r
        | {
            "held": money(r.get("held")),
            "cost_so_far": money(r.get("cost_so_far")),
            "mode": display.label(r.get("mode"), "mode"),
        }
        for r in _rows(body)
    ]
    print_table(rows, JOB_COLUMNS, out)
    if isinstance(body, dict) and body.get("next"):
        print(f"(showing {len(rows)} of {body.get('count')}; use --json and the API's next link for more)", file=out)
    return 0


def render_job(job: dict[str, Any], out: TextIO) -> None:
    lease = job.get("lease") or {}
    pairs: list[tuple[str, Any]] = [
        ("id", job.get("id")),
        ("name", job.get("name")),
        ("state", job.get("state")),
        ("mode", display.label(job.get("mode"), "mode")),
        ("gpus", job.get("gpu_count")),
        ("duration hours", job.get("duration_hours")),
        ("max price", display.rate(job.get("max_price"), "GPU-hour") if job.get("max_price") is not None else None),
        ("bid", display.rate(job.get("bid"), "GPU-hour") if job.get("bid") is not None else None),
        ("held in escrow", money(job.get("held"))),
        ("cost so far", money(job.get("cost_so_far"))),
    ]
    if job.get("pending_reason"):
        pairs.append(("pending because", job["pending_reason"]))
    if job.get("phase"):
        pairs.append(("workload", job["phase"]))
    if job.get("exit_code") is not None or job.get("end_reason"):
        pairs.append(("exit code", job.get("exit_code")))
        pairs.append(("ended because", display.label(job.get("end_reason"), "end_reason")))
    connect = job.get("connect") or {}
    if connect.get("ssh"):
        pairs.append(("ssh", connect["ssh"]["command"]))
    for url in connect.get("urls") or []:
        pairs.append((str(url.get("name") or url.get("port")), url.get("url")))
    if connect.get("note") and not connect.get("host"):
        pairs.append(("connect", connect["note"]))
    if lease:
        pairs += [
            ("node", lease.get("node_name") or lease.get("node")),
            ("region", lease.get("region")),
            ("gpu model", lease.get("gpu_model") or lease.get("gpu_name")),
            ("gpu slots", lease.get("gpu_slots")),
            ("lease price", display.rate(lease.get("price"), "GPU-hour")),
            ("lease state", lease.get("state")),
        ]
    print_fields([(k, v) for k, v in pairs if v is not None], out)
    timeline = job.get("timeline") or job.get("events") or []
    if timeline:
        print("\ntimeline:", file=out)
        print_table(
            timeline, [col("AT", "at"), col("FROM", "from_state"), col("TO", "to_state"), col("NOTE", "note")], out
        )


def cmd_jobs_show(args: argparse.Namespace, out: TextIO) -> int:
    body = client_for(args).get(f"{API}/jobs/{args.id}/")
    if args.json:
        emit_json(body, out)
        return 0
    render_job(body, out)
    return 0


TERMINAL = {"completed", "failed", "cancelled"}


def cmd_jobs_ssh(args: argparse.Namespace, out: TextIO) -> int:
    """Run ssh with the job's connect details (or print the command with --print)."""
    job = client_for(args).get(f"{API}/jobs/{args.id}/")
    ssh = (job.get("connect") or {}).get("ssh")
    if not ssh:
        state = job.get("state")
        raise UsageError(
            f"job {args.id} ({state}) has no SSH to connect to yet: book it with --ssh and wait for it to run"
        )
    argv = ["ssh", *[str(a) for a in ssh["args"]], *args.ssh_args]
    if args.print:
        print(" ".join(argv), file=out)
        return 0
    out.flush()
    os.execvp("ssh", argv)  # noqa: S606 — the user's own ssh, with the job's address
    return 0  # not reached


def cmd_keys_add(args: argparse.Namespace, out: TextIO) -> int:
    try:
        text = Path(args.file).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from exc
    body = client_for(args).post(f"{API}/ssh-keys/", json={"public_key": text, "name": args.name or ""})
    if args.json:
        emit_json(body, out)
        return 0
    print(f"Added SSH key {body.get('id')}: {body.get('fingerprint')} {body.get('name') or ''}".rstrip(), file=out)
    return 0


def cmd_keys_list(args: argparse.Namespace, out: TextIO) -> int:
    body = client_for(args).get(f"{API}/ssh-keys/")
    if args.json:
        emit_json(body, out)
        return 0
    print_table(body or [], [col("ID", "id"), col("NAME", "name"), col("FINGERPRINT", "fingerprint")], out)
    return 0


def cmd_keys_delete(args: argparse.Namespace, out: TextIO) -> int:
    client_for(args).request("DELETE", f"{API}/ssh-keys/{args.id}/")
    print(f"Deleted SSH key {args.id}.", file=out)
    return 0


def _print_lines(lines: Sequence[dict[str, Any]], out: TextIO) -> None:
    for line in lines:
        prefix = "! " if line.get("stream") == "stderr" else ""
        print(f"{prefix}{line.get('text', '')}", file=out, flush=True)


def cmd_jobs_logs(args: argparse.Namespace, out: TextIO) -> int:
    """Print the job's log; with --follow keep printing new lines until the job has ended and all is read."""
    client = client_for(args)
    after = args.after
    ended, job = False, cast(dict[str, Any], {})
    while True:
        body = client.get(f"{API}/jobs/{args.id}/logs/", params={"after": after})
        lines = body.get("lines") or []
        if args.json:
            for line in lines:
                print(json.dumps(line), file=out, flush=True)
        else:
            _print_lines(lines, out)
        after = int(body.get("next") or after)
        if not args.follow:
            return 0
        if lines:
            continue
        if ended:  # the job had ended before this read: everything is printed
            if job.get("exit_code") is not None:
                print(f"[job {args.id} {job['state']}: exit code {job['exit_code']}]", file=sys.stderr)
            return 0
        job = client.get(f"{API}/jobs/{args.id}/")
        ended = job.get("state") in TERMINAL  # then read once more: lines may have come in before it ended
        if not ended:
            time.sleep(args.poll)


def cmd_jobs_cancel(args: argparse.Namespace, out: TextIO) -> int:
    body = client_for(args).post(f"{API}/jobs/{args.id}/cancel/", json={})
    if args.json:
        emit_json(body, out)
        return 0
    print(f"Job {body.get('id', args.id)} is {body.get('state')}.", file=out)
    render_job(body, out)
    return 0


def cmd_wallet(args: argparse.Namespace, out: TextIO) -> int:
    body = client_for(args).get(f"{API}/wallet/")
    if args.json:
        emit_json(body, out)
        return 0
    print_fields([("available", money(body.get("available"))), ("held", money(body.get("held")))], out)
    txs = body.get("transactions") or body.get("recent_transactions") or []
    if txs:
        print("\nrecent transactions:", file=out)
        rows = [t | {"amount": money(t.get("amount"))} for t in txs]
        print_table(
            rows,
            [col("AT", "at", "created_at"), col("KIND", "kind"), col("AMOUNT", "amount"), col("MEMO", "memo")],
            out,
        )
    return 0


def cmd_wallet_topup(args: argparse.Namespace, out: TextIO) -> int:
    amount = args.amount.lstrip("$")
    body = client_for(args).post(f"{API}/wallet/topups/", json={"amount": amount})
    if args.json:
        emit_json(body, out)
        return 0
    status = body.get("status")
    url = body.get("checkout_url")
    if url and status != "succeeded":
        print(f"Top-up of {money(body.get('amount'))} created; pay at: {url}", file=out)
    else:
        print(f"Top-up of {money(body.get('amount'))}: {status}.", file=out)
    return 0


# --------------------------------------------------------------------------- parser


EXAMPLES = """examples:
  rigshift login --server https://rigshift.example --username ada
  rigshift wallet topup 50
  rigshift search offers 'gpu_ram>=24 num_gpus>=2 region in [eu,us]' --order=-dlperf_per_dollar
  rigshift quote --gpus 2 --min-gpu-ram 24 --max-price 1.20 --hours 3
  rigshift jobs create --name train --image pytorch/pytorch:latest --gpus 2 --max-price 1.20 --hours 3
  rigshift jobs show 42 --json
  rigshift jobs cancel 42

configuration: RIGSHIFT_SERVER and RIGSHIFT_TOKEN, or the file written by 'rigshift login'
(~/.config/rigshift/config.json, or the path in RIGSHIFT_CONFIG).
exit codes: 0 ok, 1 API or connection error (the API's message on stderr), 2 usage error."""


def _add_job_connect_commands(jobs_sub: Any, common: argparse.ArgumentParser) -> None:
    """`rigshift jobs logs` and `rigshift jobs ssh`."""
    p = jobs_sub.add_parser("logs", parents=[common], help="the job's output (stdout; stderr lines start with '! ')")
    p.add_argument("id", type=int)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the job ends")
    p.add_argument("--after", type=int, default=0, help="only lines after this seq")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between polls with --follow")
    p.set_defaults(func=cmd_jobs_logs)
    p = jobs_sub.add_parser("ssh", parents=[common], help="ssh into a running job booked with --ssh")
    p.add_argument("id", type=int)
    p.add_argument("--print", action="store_true", help="print the ssh command instead of running it")
    p.add_argument(
        "ssh_args", nargs="*", help="more arguments for ssh, after --: rigshift jobs ssh 5 -- -L 8888:localhost:8888"
    )
    p.set_defaults(func=cmd_jobs_ssh)


def _add_keys_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """`rigshift keys add|list|delete`."""
    keys = sub.add_parser("keys", help="your public SSH keys (put into jobs booked with --ssh)")
    keys_sub = keys.add_subparsers(dest="keys_cmd", metavar="ACTION", required=True)
    p = keys_sub.add_parser(
        "add", parents=[common], help="add a public key, e.g. 'rigshift keys add ~/.ssh/id_ed25519.pub'"
    )
    p.add_argument("file")
    p.add_argument("--name")
    p.set_defaults(func=cmd_keys_add)
    p = keys_sub.add_parser("list", parents=[common], help="your keys")
    p.set_defaults(func=cmd_keys_list)
    p = keys_sub.add_parser("delete", parents=[common], help="delete a key")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_keys_delete)


def _add_wallet_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """`rigshift wallet [topup AMOUNT]`."""
    wallet = sub.add_parser("wallet", parents=[common], help="wallet balance and recent transactions")
    wallet.set_defaults(func=cmd_wallet)
    wallet_sub = wallet.add_subparsers(dest="wallet_cmd", metavar="ACTION")
    p = wallet_sub.add_parser(
        "topup", parents=[common], help="add money to the wallet, e.g. 'rigshift wallet topup 50'"
    )
    p.add_argument("amount", help="dollars, e.g. 50 or 12.50")
    p.set_defaults(func=cmd_wallet_topup)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")
    common.add_argument("--server", default=argparse.SUPPRESS, help="API server URL (or RIGSHIFT_SERVER)")
    common.add_argument("--token", default=argparse.SUPPRESS, help="API token (or RIGSHIFT_TOKEN)")

    parser = argparse.ArgumentParser(
        prog="rigshift",
        description="RigShift customer CLI: search GPU offers, get quotes, book and follow jobs, manage the wallet.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", default=False, help="print JSON for scripts")
    parser.add_argument("--server", default=None, help="API server URL (or RIGSHIFT_SERVER)")
    parser.add_argument("--token", default=None, help="API token (or RIGSHIFT_TOKEN)")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("login", parents=[common], help="get an API token and save it in the config file")
    p.add_argument("--username", required=True)
    p.add_argument("--password", help="(prompted when left out)")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("signup", parents=[common], help="create a customer account and save its token")
    p.add_argument("--username", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--company", default="")
    p.add_argument("--password", help="(prompted when left out)")
    p.add_argument("--no-save", action="store_true", help="print the token instead of saving it")
    p.set_defaults(func=cmd_signup)

    search = sub.add_parser("search", help="search the market")
    search_sub = search.add_subparsers(dest="what", metavar="WHAT", required=True)
    p = search_sub.add_parser(
        "offers",
        parents=[common],
        help="offers matching a query, e.g. 'gpu_ram>=24 num_gpus>=2 region in [eu,us]'",
    )
    p.add_argument(
        "query", nargs="*", help="query clauses: field op value, e.g. 'gpu_ram>=24 num_gpus>=2' (quote the whole query)"
    )
    p.add_argument("--order", help="sort field, with a leading minus for descending: --order=-dlperf_per_dollar")
    p.add_argument("--limit", type=int)
    p.set_defaults(func=cmd_search_offers)

    p = sub.add_parser("quote", parents=[common], help="what a job would cost and when it could start")
    add_requirement_flags(p, booking=False)
    p.set_defaults(func=cmd_quote)

    jobs = sub.add_parser("jobs", help="book and follow jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_cmd", metavar="ACTION", required=True)
    p = jobs_sub.add_parser("create", parents=[common], help="book a job (holds its maximum cost in escrow)")
    p.add_argument("--name", required=True)
    p.add_argument("--template", choices=TEMPLATES, help="a curated workload: fills image, command, ports, SSH")
    p.add_argument("--image", help="container image (required without --template)")
    p.add_argument("--ssh", action="store_true", default=None, help="expose SSH with your account's keys")
    p.add_argument("--command", dest="command_line", help="command to run in the container")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable (repeatable)")
    p.add_argument("--port", action="append", type=int, default=[], help="port to expose (repeatable)")
    p.add_argument("--idempotency-key", help="a repeated create with the same key returns the same job")
    add_requirement_flags(p, booking=True)
    p.set_defaults(func=cmd_jobs_create)
    p = jobs_sub.add_parser("list", parents=[common], help="your jobs")
    p.set_defaults(func=cmd_jobs_list)
    p = jobs_sub.add_parser("show", parents=[common], help="one job: state, timeline, lease, cost so far")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_jobs_show)
    _add_job_connect_commands(jobs_sub, common)
    p = jobs_sub.add_parser("cancel", parents=[common], help="cancel a job and release unused escrow")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_jobs_cancel)

    _add_keys_commands(sub, common)

    _add_wallet_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: --help exits 0, usage errors exit 2
        return int(exc.code) if isinstance(exc.code, int) else 2
    out = sys.stdout
    try:
        return int(args.func(args, out))
    except UsageError as exc:
        print(f"rigshift: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"rigshift: error: {exc.message} (HTTP {exc.status})", file=sys.stderr)
        return 1
    except requests.ConnectionError:
        server, _ = settings_resolve(args)
        print(f"rigshift: cannot connect to {server}: is the server running and the URL right?", file=sys.stderr)
        return 1
    except requests.Timeout:
        print(f"rigshift: the server did not answer within {args.timeout:g}s", file=sys.stderr)
        return 1
    except requests.RequestException as exc:
        print(f"rigshift: request failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rigshift: interrupted", file=sys.stderr)
        return 130
