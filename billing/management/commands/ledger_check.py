"""`python manage.py ledger_check`: verify the ledger; exit 1 on any violation."""

import sys
from typing import Any

from django.core.management.base import BaseCommand

from billing.selectors.ledger import ledger_verify


class Command(BaseCommand):
    help = "Recompute every balance from the entries and check every ledger invariant; exit non-zero on a violation."

    def handle(self, *args: Any, **options: Any) -> None:
        report = ledger_verify()
        for line in report.checks:
            self.stdout.write(f"checked: {line}")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("ledger OK"))
            return
        for violation in report.violations:
            self.stderr.write(f"VIOLATION: {violation}")
        self.stderr.write(self.style.ERROR(f"ledger check FAILED: {len(report.violations)} violation(s)"))
        sys.exit(1)
