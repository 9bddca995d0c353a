"""A recording, replaying HTTP client for the real `stripe` library, and signed webhook payloads."""

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import stripe

WEBHOOK_SECRET = "whsec_test_rigshift_0123456789"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


class ReplayHTTPClient(stripe.HTTPClient):
    """Answers Stripe API calls from `routes[(method, path)]` (a list consumed in order, last one repeated)."""

    name = "replay"

    def __init__(self, routes: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]) -> None:
        super().__init__()
        self.routes = routes
        self.requests: list[Recorded] = []

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, *, _usage: Any = None) -> Any:
        path = urlparse(url).path
        form = parse_qs(post_data.decode() if isinstance(post_data, bytes) else post_data or "")
        self.requests.append(Recorded(method.upper(), path, dict(headers or {}), form))
        answers = self.routes.get((method.upper(), path))
        if not answers:
            return json.dumps({"error": {"type": "invalid_request_error", "message": f"no route {path}"}}), 404, {}
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        return json.dumps(body), status, {"Request-Id": "req_test"}

    def close(self) -> None:
        pass


def checkout_session(session_id: str = "cs_test_a1", topup_id: int = 1, cents: int = 5000) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_total": cents,
        "currency": "usd",
        "mode": "payment",
        "payment_status": "unpaid",
        "status": "open",
        "client_reference_id": str(topup_id),
        "metadata": {"topup_id": str(topup_id)},
        "payment_intent": None,
        "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        "livemode": False,
    }


def event(event_type: str, obj: dict[str, Any], event_id: str = "evt_1") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": obj},
    }


def signed(body: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[str, str]:
    payload = json.dumps(body)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return payload, header
