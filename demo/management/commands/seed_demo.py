"""Seed the demo market (idempotent; demo only). Thin: the work is demo.seed.demo_seed."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.seed import DEMO_PASSWORD, demo_seed


class Command(BaseCommand):
    help = (
        "Seed the demo market: demo logins, wallet credit, ~36 verified, listed nodes and four months of settled "
        "usage and financing written in simulated time (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="seed even with DJANGO_DEBUG off (never in production)"
        )
        parser.add_argument(
            "--no-history",
            action="store_true",
            help="skip the months of settled usage and financing written in simulated time (demo/history.py)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEV_MODE and not options["force"]:
            raise CommandError("seed_demo is for the demo only and refuses to run with DJANGO_DEBUG off (use --force).")
        result = demo_seed(history=not options["no_history"])
        if result.created:
            self.stdout.write(f"demo market: created {len(result.created)} objects ({result.nodes} demo nodes)")
        else:
            self.stdout.write(f"demo market: already seeded, nothing changed ({result.nodes} demo nodes)")
        self.stdout.write(f"demo logins (password {DEMO_PASSWORD}): demo-provider, demo-customer, demo-lender, admin")
