"""The `rigshift` CLI against a real running server (pytest-django's live_server), in-process and as the
installed console script: signup → top-up → quote → book → show → cancel with the escrow returned."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.models import Job, JobState
from tests.factories import PASSWORD, CustomerFactory, NodeFactory

pytestmark = pytest.mark.django_db(transaction=True)

from rigshift_cli.main import main  # noqa: E402  (installed from agent/, no Django inside)


@pytest.fixture
def cli_env(live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the CLI at the live server with a private config file; no token in the environment."""
    monkeypatch.setenv("RIGSHIFT_SERVER", live_server.url)
    monkeypatch.setenv("RIGSHIFT_CONFIG", str(tmp_path / "rigshift.json"))
    monkeypatch.delenv("RIGSHIFT_TOKEN", raising=False)
    return {"server": live_server.url, "config": str(tmp_path / "rigshift.json")}


@pytest.fixture
def market(transactional_db: Any) -> list[Any]:
    return [
        NodeFactory(name="cheap-eu", price_micros=400_000, region="eu", gpu_count=4),
        NodeFactory(name="dear-us", price_micros=900_000, region="us", country="US", gpu_count=8),
    ]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, "--json", *argv)
    assert code == 0, err
    return json.loads(out)


def signup(capsys: pytest.CaptureFixture[str], username: str) -> None:
    code, out, err = run(
        capsys, "signup", "--username", username, "--email", f"{username}@example.com", "--password", PASSWORD
    )
    assert code == 0, err
    assert "Token saved to" in out


BOOK = ["--gpus", "2", "--max-price", "1.00", "--hours", "2", "--region", "eu", "--region", "us"]


def test_signup_topup_book_show_cancel_refund(
    cli_env: dict[str, str], market: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    signup(capsys, "cli-ada")
    stored = json.loads(Path(cli_env["config"]).read_text())
    assert stored["server"] == cli_env["server"] and stored["token"].startswith("rs_")
    assert oct(Path(cli_env["config"]).stat().st_mode & 0o777) == "0o600"

    code, out, err = run(capsys, "wallet", "topup", "50")
    assert code == 0, err
    assert "$50.00" in out and "succeeded" in out
    wallet = run_json(capsys, "wallet")
    assert wallet["available"] == "50.000000" and wallet["held"] == "0.000000"

    code, out, _ = run(capsys, "search", "offers", "gpu_ram>=24 num_gpus>=2", "--order=-price")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "GPU", "FREE"] and set(lines[1]) == {"-", " "}
    assert out.index("$0.90") < out.index("$0.40")  # ordered by price descending

    code, out, err = run(capsys, "quote", *BOOK)
    assert code == 0, err
    assert "matching nodes now" in out and "$4.00" in out and "$0.40 - $0.90" in out

    job = run_json(
        capsys, "jobs", "create", "--name", "cli-train", "--image", "pytorch/pytorch:latest", "--env", "A=1", *BOOK
    )
    assert job["held"] == "4.000000" and job["workload"]["env"] == {"A": "1"}
    job_id = str(job["id"])
    assert run_json(capsys, "wallet")["available"] == "46.000000"

    code, out, _ = run(capsys, "jobs", "list")
    assert code == 0 and "cli-train" in out and "$4.00" in out
    code, out, _ = run(capsys, "jobs", "show", job_id)
    assert code == 0 and "id" in out and "cli-train" in out and "timeline:" in out

    code, out, err = run(capsys, "jobs", "cancel", job_id)
    assert code == 0, err
    assert "cancelled" in out
    assert Job.objects.get(pk=int(job_id)).state == JobState.CANCELLED
    wallet = run_json(capsys, "wallet")
    assert wallet["available"] == "50.000000" and wallet["held"] == "0.000000"
    code, out, _ = run(capsys, "wallet")
    assert "$50.00" in out and f"Job {job_id} cancelled" in out  # the release, in recent transactions

    # Cancelling again is the API's 409, shown as its message with exit 1.
    code, out, err = run(capsys, "jobs", "cancel", job_id)
    assert code == 1 and "nothing to cancel" in err and out == ""


def test_idempotency_key_books_once(cli_env: dict[str, str], market: Any, capsys: pytest.CaptureFixture[str]) -> None:
    signup(capsys, "cli-idem")
    run(capsys, "wallet", "topup", "20")
    args = ["jobs", "create", "--name", "x", "--image", "img", "--idempotency-key", "k-1", *BOOK]
    first = run_json(capsys, *args)
    second = run_json(capsys, *args)
    assert first["id"] == second["id"]
    assert Job.objects.count() == 1
    assert run_json(capsys, "wallet")["held"] == "4.000000"


def test_api_errors_are_shown_with_nonzero_exit(
    cli_env: dict[str, str], market: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    signup(capsys, "cli-err")
    # 402: the wallet cannot cover the hold.
    code, out, err = run(capsys, "jobs", "create", "--name", "x", "--image", "img", *BOOK)
    assert code == 1 and "short by $4.00" in err and "HTTP 402" in err and out == ""
    # 400: impossible requirement names the market maximum.
    code, _, err = run(capsys, "quote", "--gpus", "16")
    assert code == 1 and "largest node (8 GPUs)" in err
    # A quote needs no duration (then there is no max cost yet); a booking does.
    quote = run_json(capsys, "quote", "--gpus", "4", "--region", "us")
    assert quote["matching_nodes"] == 1 and quote["max_cost"] is None
    assert run(capsys, "jobs", "create", "--name", "x", "--image", "i", "--max-price", "1")[0] == 2
    # 400: malformed query names the clause.
    code, _, err = run(capsys, "search", "offers", "gpu_ramm>=24")
    assert code == 1 and "gpu_ramm" in err
    # Usage errors exit 2 without calling the server.
    assert run(capsys, "jobs", "show", "not-a-number")[0] == 2
    assert run(capsys, "jobs", "create", "--name", "x", "--image", "i", "--hours", "1", "--env", "NOEQ")[0] == 2
    assert Job.objects.count() == 0


def test_other_customers_job_is_not_found(
    cli_env: dict[str, str], market: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    signup(capsys, "cli-a")
    run(capsys, "wallet", "topup", "10")
    job = run_json(capsys, "jobs", "create", "--name", "a-job", "--image", "img", *BOOK)
    monkeypatch.setenv("RIGSHIFT_CONFIG", str(Path(cli_env["config"]).with_name("b.json")))
    signup(capsys, "cli-b")
    for argv in (("jobs", "show", str(job["id"])), ("jobs", "cancel", str(job["id"]))):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "No such job" in err
    assert run_json(capsys, "jobs", "list")["results"] == []
    assert run_json(capsys, "wallet")["available"] == "0.000000"
    assert (
        Job.objects.get(pk=job["id"]).state == JobState.PENDING
        or Job.objects.get(pk=job["id"]).held_micros == 4_000_000
    )


def test_login_with_password_and_token_env(
    cli_env: dict[str, str], market: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = CustomerFactory(user__username="cli-login")
    code, out, err = run(
        capsys, "login", "--server", cli_env["server"], "--username", "cli-login", "--password", PASSWORD
    )
    assert code == 0, err and "Logged in" in out
    assert run_json(capsys, "wallet")["available"] == "0.000000"
    code, _, err = run(capsys, "login", "--username", "cli-login", "--password", "wrong")
    assert code == 1 and "HTTP 4" in err
    # RIGSHIFT_TOKEN wins over the config file; a bad one is the API's 401 message.
    monkeypatch.setenv("RIGSHIFT_TOKEN", "rs_bogus")
    code, _, err = run(capsys, "wallet")
    assert code == 1 and "Invalid or revoked API token" in err
    assert customer.pk


def test_connection_error_is_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIGSHIFT_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.setenv("RIGSHIFT_SERVER", "http://127.0.0.1:9")
    monkeypatch.setenv("RIGSHIFT_TOKEN", "rs_x")
    code, out, err = run(capsys, "wallet")
    assert code == 1 and "cannot connect to http://127.0.0.1:9" in err and out == ""
    monkeypatch.delenv("RIGSHIFT_TOKEN")
    code, _, err = run(capsys, "jobs", "list")
    assert code == 2 and "no API token" in err


def console_script() -> str:
    path = Path(sys.executable).with_name("rigshift")
    found = str(path) if path.exists() else shutil.which("rigshift")
    if not found:
        pytest.fail("the `rigshift` console script is not installed: run `.venv/bin/pip install -e agent/`")
    return found


def test_installed_console_script(cli_env: dict[str, str], market: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The installed `rigshift` entry point, run as a subprocess against the live server."""
    signup(capsys, "cli-proc")
    env = {**os.environ, "RIGSHIFT_SERVER": cli_env["server"], "RIGSHIFT_CONFIG": cli_env["config"]}
    exe = console_script()

    def proc(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *argv], env=env, capture_output=True, text=True, timeout=60)

    topup = proc("wallet", "topup", "25.00", "--json")
    assert topup.returncode == 0, topup.stderr
    assert json.loads(topup.stdout)["status"] == "succeeded"
    booked = proc("--json", "jobs", "create", "--name", "proc-job", "--image", "img", *BOOK)
    assert booked.returncode == 0, booked.stderr
    job_id = str(json.loads(booked.stdout)["id"])
    shown = proc("jobs", "show", job_id)
    assert shown.returncode == 0 and "proc-job" in shown.stdout
    cancelled = proc("jobs", "cancel", job_id, "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["state"] == "cancelled"
    wallet = json.loads(proc("wallet", "--json").stdout)
    assert wallet["available"] == "25.000000" and wallet["held"] == "0.000000"
    bad = proc("search", "offers", "region==mars")
    assert bad.returncode == 1 and "mars" in bad.stderr and bad.stdout == ""
    usage = proc("jobs", "frobnicate")
    assert usage.returncode == 2
