"""`rigshift jobs logs ID [--follow]` and the exit code in `rigshift jobs show`, against the live server."""

import json
import threading
from datetime import timedelta
from typing import Any, cast

import pytest
from django.db import close_old_connections
from django.utils import timezone

from broker.models import Job, JobLogLine, JobState, Lease
from common.services import api_token_create
from marketplace.models import Customer, Node
from tests.factories import CustomerFactory, NodeFactory

pytestmark = pytest.mark.django_db(transaction=True)

from rigshift_cli.main import main  # noqa: E402


@pytest.fixture
def job_with_log(live_server: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Job:
    customer = cast(Customer, CustomerFactory())
    _, raw = api_token_create(user=customer.user)
    monkeypatch.setenv("RIGSHIFT_SERVER", live_server.url)
    monkeypatch.setenv("RIGSHIFT_CONFIG", str(tmp_path / "rigshift.json"))
    monkeypatch.setenv("RIGSHIFT_TOKEN", raw)
    job = Job.objects.create(
        customer=customer,
        name="nb",
        gpu_count=1,
        image="img",
        command="python t.py",
        duration_seconds=60,
        state=JobState.RUNNING,
        phase="running",
    )
    now = timezone.now()
    lease = Lease.objects.create(
        job=job,
        node=cast(Node, NodeFactory()),
        gpu_slots=[0],
        gpu_count=1,
        price_micros=1,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        state="active",
    )
    for seq, (stream, text) in enumerate([("stdout", "$ python t.py"), ("stderr", "warning: slow")], start=1):
        JobLogLine.objects.create(job=job, lease=lease, seq=seq, at=now, stream=stream, text=text)
    return job


def test_logs_prints_stdout_and_marks_stderr(job_with_log: Job, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "logs", str(job_with_log.pk)]) == 0
    assert capsys.readouterr().out.splitlines() == ["$ python t.py", "! warning: slow"]
    assert main(["--json", "jobs", "logs", str(job_with_log.pk)]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert set(first) == {"seq", "at", "stream", "text"}


def test_follow_prints_new_lines_until_the_job_ends_with_its_exit_code(
    job_with_log: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    lease = Lease.objects.get(job=job_with_log)

    def finish() -> None:
        try:
            JobLogLine.objects.create(
                job=job_with_log, lease=lease, seq=3, at=timezone.now(), stream="stderr", text="exited with code 3"
            )
            Job.objects.filter(pk=job_with_log.pk).update(state=JobState.FAILED, exit_code=3, end_reason="exited")
        finally:
            close_old_connections()

    timer = threading.Timer(0.5, finish)
    timer.start()
    assert main(["jobs", "logs", str(job_with_log.pk), "--follow", "--poll", "0.2"]) == 0
    timer.join()
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["$ python t.py", "! warning: slow", "! exited with code 3"]
    assert "exit code 3" in captured.err
    assert main(["jobs", "show", str(job_with_log.pk)]) == 0
    shown = capsys.readouterr().out
    assert "exit code" in shown and "Exited" in shown


def test_another_customers_job_logs_are_not_found(job_with_log: Job, monkeypatch, capsys) -> None:
    _, raw = api_token_create(user=CustomerFactory().user)
    monkeypatch.setenv("RIGSHIFT_TOKEN", raw)
    assert main(["jobs", "logs", str(job_with_log.pk)]) == 1
    assert "HTTP 404" in capsys.readouterr().err
