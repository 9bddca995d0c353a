"""`rigshift keys add FILE`, `rigshift jobs create --template … --ssh` and `rigshift jobs ssh ID` (runs a fake
`ssh` that records its arguments), against the live server."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from django.utils import timezone

from broker.models import Job, Lease, SshKey
from common.services import api_token_create
from marketplace.models import Customer, Node
from tests.broker.booking_helpers import fund
from tests.broker.test_connect import ed25519_key
from tests.factories import CustomerFactory, NodeFactory

pytestmark = pytest.mark.django_db(transaction=True)

from rigshift_cli.main import main  # noqa: E402


@pytest.fixture
def customer(live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Customer:
    customer = cast(Customer, CustomerFactory())
    _, raw = api_token_create(user=customer.user)
    monkeypatch.setenv("RIGSHIFT_SERVER", live_server.url)
    monkeypatch.setenv("RIGSHIFT_CONFIG", str(tmp_path / "rigshift.json"))
    monkeypatch.setenv("RIGSHIFT_TOKEN", raw)
    return customer


def test_keys_add_list_and_a_template_booking_with_ssh(customer: Customer, tmp_path: Path, capsys) -> None:
    pub = tmp_path / "id_ed25519.pub"
    pub.write_text(ed25519_key() + "\n")
    assert main(["keys", "add", str(pub)]) == 0
    assert "SHA256:" in capsys.readouterr().out
    assert SshKey.objects.filter(customer=customer).count() == 1
    assert main(["keys", "add", str(tmp_path / "missing.pub")]) == 2
    fund(customer, 20)
    NodeFactory(listed=True)  # a market to book on
    argv = ["--json", "jobs", "create", "--name", "nb", "--template", "pytorch-jupyter", "--gpus", "1"]
    assert main([*argv, "--max-price", "1", "--hours", "1", "--any-node"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["workload"]["template"] == "pytorch-jupyter" and body["workload"]["ssh"] is True
    assert body["workload"]["ports"] == [8888]


def test_jobs_ssh_runs_ssh_with_the_jobs_address(
    customer: Customer, live_server: Any, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_exec(*args: Any) -> None:
        raise AssertionError(f"would exec {args} inside the test process")

    monkeypatch.setattr(os, "execvp", no_exec)
    node = cast(Node, NodeFactory(public_host="203.0.113.5"))
    job = Job.objects.create(
        customer=customer, name="nb", gpu_count=1, image="img", duration_seconds=600, state="running", ssh=True
    )
    now = timezone.now()
    Lease.objects.create(
        job=job,
        node=node,
        gpu_slots=[0],
        gpu_count=1,
        price_micros=1,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        state="active",
        port_map=[{"container": 22, "host": 40022, "protocol": "tcp"}],
    )
    assert main(["jobs", "ssh", str(job.pk), "--print"]) == 0
    assert capsys.readouterr().out.strip() == "ssh -p 40022 root@203.0.113.5"
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "ssh-args.json"
    (fake / "ssh").write_text(
        f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n"
    )
    (fake / "ssh").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    code = "import sys; from rigshift_cli.main import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "jobs", "ssh", str(job.pk), "--", "-o", "StrictHostKeyChecking=no"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(record.read_text()) == ["-p", "40022", "root@203.0.113.5", "-o", "StrictHostKeyChecking=no"]
    other = CustomerFactory()
    _, raw = api_token_create(user=other.user)
    env["RIGSHIFT_TOKEN"] = raw
    denied = subprocess.run(
        [sys.executable, "-c", code, "jobs", "ssh", str(job.pk)], env=env, capture_output=True, text=True, timeout=60
    )
    assert denied.returncode == 1 and "404" in denied.stderr
