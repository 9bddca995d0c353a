"""Structured logs: a JSON formatter with the request id and the Celery task id of the current context.

`LOG_FORMAT=json` (the default when DJANGO_DEBUG=0) makes every log line one JSON object:
`{"time", "level", "logger", "message", "request_id", "task_id", ...}`. The request id comes from
`common.middleware.RequestIdMiddleware` (the caller's `X-Request-ID` or a fresh one); the task id is
set by the Celery `task_prerun` / `task_postrun` signals connected below. Both live in contextvars,
so threads and async tasks do not mix them up.
"""

import json
import logging
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("rigshift_request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("rigshift_task_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and is emitted too.
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

_MAX_REQUEST_ID = 128


def request_id_clean(raw: str | None) -> str:
    """The caller's request id if it is a sane token, otherwise a fresh one (never log-injectable)."""
    if raw:
        raw = raw.strip()
        if 0 < len(raw) <= _MAX_REQUEST_ID and all(c.isalnum() or c in "-_.:" for c in raw):
            return raw
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Puts `request_id` and `task_id` on every record (so plain formats may use them too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "task_id"):
            record.task_id = task_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
            "task_id": getattr(record, "task_id", None) or task_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in payload and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def _task_prerun(task_id: str | None = None, **kwargs: Any) -> None:
    task_id_var.set(task_id)


def _task_postrun(**kwargs: Any) -> None:
    task_id_var.set(None)


def celery_signals_connect() -> None:
    """Connect the task-id signals (idempotent: celery de-duplicates by dispatch_uid)."""
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_prerun, weak=False, dispatch_uid="rigshift-log-task-prerun")
    task_postrun.connect(_task_postrun, weak=False, dispatch_uid="rigshift-log-task-postrun")


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The LOGGING dict for settings: `plain` (dev) or `json` (production)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "common.logging.ContextFilter"}},
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
            "json": {"()": "common.logging.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "plain",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }
