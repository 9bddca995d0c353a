"""Financing's Celery tasks: the beat schedule names tasks that exist, and they run the daily services."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from billing.services.wallet import wallet_credit
from common.money import MICROS
from config.celery import app
from financing.models import ReservedContract
from financing.services.reserved import reserved_contract_open
from financing.tasks import financing_review_task, reserved_contracts_charge_task
from tests.factories import CustomerFactory, NodeFactory
from tests.financing.support import lender, season
from tests.financing.test_waterfall import approved_advance


def test_every_beat_entry_names_a_registered_task() -> None:
    app.loader.import_default_modules()  # the autodiscovery the worker and beat do at start
    entries = {name: entry["task"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
    assert {"financing.tasks.financing_review_task", "financing.tasks.reserved_contracts_charge_task"} <= set(
        entries.values()
    )
    assert {name: task for name, task in entries.items() if task not in app.tasks} == {}


@pytest.mark.django_db
def test_the_daily_tasks_review_open_advances_and_charge_due_months() -> None:
    approved_advance(lenders=[lender(capital_micros=10_000 * MICROS)])
    assert financing_review_task.delay().get() == 1  # the one open advance

    customer = CustomerFactory().user
    wallet_credit(user=customer, amount_micros=10_000 * MICROS, key="tasks-topup")
    node = season(NodeFactory())
    contract = reserved_contract_open(
        customer_user=customer,
        node=node,
        gpu_model=node.gpu_model,
        gpu_count=1,
        term_months=3,
        list_price_micros=400_000,
        starts_at=timezone.now() - timedelta(days=31),  # month 2 is due
    )
    assert reserved_contracts_charge_task.delay().get() == 1
    assert ReservedContract.objects.get(pk=contract.pk).months_paid == 2
