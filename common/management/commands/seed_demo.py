"""Seed the demo market (placeholder until the demo seeding lands)."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Seed the demo market (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write("demo market: nothing to seed yet")
