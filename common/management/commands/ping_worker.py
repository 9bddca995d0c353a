"""Check that a Celery worker answers: send `common.tasks.ping` through the broker and wait for its answer."""

import secrets
import time
from typing import Any

from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.tasks import PING_KEY, ping


class Command(BaseCommand):
    help = "Send a ping task through the Celery broker and wait until a worker has run it (exit 1 on timeout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args: Any, **options: Any) -> None:
        nonce = secrets.token_hex(8)
        started = time.monotonic()
        ping.delay(nonce)
        key = PING_KEY.format(nonce=nonce)
        while time.monotonic() - started < options["timeout"]:
            if cache.get(key) == "pong":
                self.stdout.write(f"worker answered in {time.monotonic() - started:.2f}s")
                return
            time.sleep(0.2)
        raise CommandError(f"no worker answered the ping within {options['timeout']:.0f}s")
