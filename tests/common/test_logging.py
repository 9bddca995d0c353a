"""Structured logs: JSON lines with request and task ids; X-Request-ID taken or made, and echoed."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery.signals import task_postrun, task_prerun
from django.test import Client

from common.logging import ContextFilter, JsonFormatter, logging_config, request_id_clean, request_id_var, task_id_var

ROOT = Path(__file__).resolve().parents[2]


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("rigshift.test.json")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_line_has_the_fields() -> None:
    logger, stream = capture()
    token = request_id_var.set("req-123")
    try:
        logger.info("booked %s", "job 7", extra={"job_id": 7})
    finally:
        request_id_var.reset(token)
    line = json.loads(stream.getvalue())
    assert line["message"] == "booked job 7"
    assert line["level"] == "INFO"
    assert line["logger"] == "rigshift.test.json"
    assert line["request_id"] == "req-123"
    assert line["task_id"] is None
    assert line["job_id"] == 7
    assert line["time"].endswith("+00:00")


def test_exceptions_stay_on_one_line() -> None:
    logger, stream = capture()
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "ValueError: boom" in json.loads(lines[0])["exc_info"]


def test_celery_signals_set_and_clear_the_task_id() -> None:
    logger, stream = capture()
    task_prerun.send(sender=None, task_id="task-abc", task=None, args=(), kwargs={})
    logger.warning("inside the task")
    task_postrun.send(sender=None, task_id="task-abc", task=None, args=(), kwargs={}, retval=None, state="SUCCESS")
    logger.warning("after the task")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["task_id"] == "task-abc"
    assert second["task_id"] is None
    assert task_id_var.get() is None


@pytest.mark.django_db
def test_request_id_is_taken_from_the_caller_and_echoed(client: Client) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


@pytest.mark.django_db
def test_request_id_is_generated_when_missing_or_unsafe(client: Client) -> None:
    made = client.get("/healthz")["X-Request-ID"]
    assert len(made) == 32
    assert client.get("/healthz")["X-Request-ID"] != made
    hostile = client.get("/healthz", HTTP_X_REQUEST_ID='x"\n{"level":"CRITICAL"}')["X-Request-ID"]
    assert "\n" not in hostile and '"' not in hostile
    assert request_id_clean("a" * 500) != "a" * 500


@pytest.mark.django_db
def test_request_id_reaches_log_records_made_during_the_request(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.INFO):
        client.get("/api/v1/jobs/", HTTP_X_REQUEST_ID="trace-42")  # 401 → django.request logs a warning
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records, "django.request logged nothing"
    assert {getattr(r, "request_id", None) for r in records} == {"trace-42"}


def test_logging_config_switches_formatter() -> None:
    assert logging_config(log_format="json", level="INFO")["handlers"]["console"]["formatter"] == "json"
    assert logging_config(log_format="plain", level="INFO")["handlers"]["console"]["formatter"] == "plain"


def test_production_defaults_to_json_logs() -> None:
    """With DJANGO_DEBUG=0 (and no LOG_FORMAT) a real process logs JSON lines."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "DJANGO_SETTINGS_MODULE")},
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": "x" * 60,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    code = "import django, logging; django.setup(); logging.getLogger('rigshift.probe').warning('hello %s', 'json')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello json"
    assert line["logger"] == "rigshift.probe"
