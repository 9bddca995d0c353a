"""Webhooks: a receiver (a real HTTP server in the test) gets each job state change once, signed with the
endpoint's secret; a failing receiver is retried with back-off and shown failing, then failed, in the log.
E-mail goes to the console backend (locmem in tests) for the events the user chose."""

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from broker.models import Job, JobState
from broker.services.jobs_state import job_transition
from notify.models import DeliveryState, WebhookDelivery
from notify.services.events import endpoint_add, preference_set, webhooks_retry_due
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


class Receiver:
    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(204)
    yield r
    r.server.shutdown()


@pytest.fixture
def failing() -> Iterator[Receiver]:
    r = Receiver(500)
    yield r
    r.server.shutdown()


def verify(secret: str, request: dict[str, Any]) -> dict[str, Any]:
    parts = dict(item.split("=", 1) for item in request["headers"]["X-RigShift-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + request["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    return json.loads(request["body"])


def _job(customer: Any) -> Job:
    return Job.objects.create(customer=customer, name="j", gpu_count=1, image="img", duration_seconds=60)


def test_receiver_gets_each_job_state_change_once_signed(
    receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    customer: Any = CustomerFactory()
    endpoint = endpoint_add(user=customer.user, url=receiver.url)
    job = _job(customer)
    with django_capture_on_commit_callbacks(execute=True):
        job_transition(job_id=job.pk, from_states=[JobState.PENDING], to_state=JobState.MATCHED, note="placed")
    with django_capture_on_commit_callbacks(execute=True):
        job_transition(job_id=job.pk, from_states=[JobState.MATCHED], to_state=JobState.RUNNING, note="started")
        job_transition(job_id=job.pk, from_states=[JobState.MATCHED], to_state=JobState.RUNNING, note="again")  # no-op
    with django_capture_on_commit_callbacks(execute=True):
        job_transition(job_id=job.pk, from_states=[JobState.RUNNING], to_state=JobState.FAILED, note="exit 3")
    bodies = [verify(endpoint.secret, r) for r in receiver.requests]
    assert [(b["data"]["from_state"], b["data"]["to_state"]) for b in bodies] == [
        ("pending", "matched"),
        ("matched", "running"),
        ("running", "failed"),
    ]
    assert all(r["headers"]["X-RigShift-Event"] == "job.state_changed" for r in receiver.requests)
    assert len({b["key"] for b in bodies}) == 3
    webhooks_retry_due(now=timezone.now() + timedelta(days=1))  # nothing is pending: nothing is resent
    assert len(receiver.requests) == 3
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    other: Any = CustomerFactory()
    assert not WebhookDelivery.objects.filter(endpoint__user=other.user).exists()


def test_failing_receiver_is_retried_with_backoff_and_shown_failing(
    failing: Receiver, django_capture_on_commit_callbacks
) -> None:
    customer: Any = CustomerFactory()
    endpoint_add(user=customer.user, url=failing.url)
    job = _job(customer)
    with django_capture_on_commit_callbacks(execute=True):
        job_transition(job_id=job.pk, from_states=[JobState.PENDING], to_state=JobState.CANCELLED, note="cancelled")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("pending", 1, 500)
    page = Client()
    page.force_login(customer.user)
    assert "failing, retrying" in page.get("/notify/").content.decode()
    now = timezone.now()
    assert webhooks_retry_due(now=now + timedelta(seconds=10)) == 0  # not due yet: back-off of 30 s
    for step in (31, 31 + 121, 31 + 121 + 601, 31 + 121 + 601 + 1801, 31 + 121 + 601 + 1801 + 7201):
        assert webhooks_retry_due(now=now + timedelta(seconds=step)) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 6)
    assert len(failing.requests) == 6 and len({r["body"] for r in failing.requests}) == 1
    html = page.get("/notify/").content.decode()
    assert "Failed" in html and "HTTP 500" in html


def test_email_only_for_chosen_events_and_the_page_is_ones_own(django_capture_on_commit_callbacks) -> None:
    customer: Any = CustomerFactory(user__email="ada@example.com")
    job = _job(customer)
    with django_capture_on_commit_callbacks(execute=True):
        job_transition(job_id=job.pk, from_states=[JobState.PENDING], to_state=JobState.MATCHED)
    assert mail.outbox == []  # e-mail is opt-in
    page = Client()
    page.force_login(customer.user)
    assert page.post("/notify/", {"email": ["job.state_changed"], "webhook": []}).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        job_transition(job_id=job.pk, from_states=[JobState.MATCHED], to_state=JobState.RUNNING)
    assert [m.subject for m in mail.outbox] == [f"[RigShift] Job {job.pk} is running"]
    assert page.post("/notify/", {"email": ["nope"]}).status_code == 400
    endpoint = endpoint_add(user=customer.user, url="https://example.com/hook")
    other = Client()
    other.force_login(CustomerFactory().user)
    assert other.post(f"/notify/webhooks/{endpoint.pk}/delete/").status_code == 404
    assert endpoint.secret not in other.get("/notify/").content.decode()
    preference_set(user=customer.user, email_events=[], webhook_events=[])
