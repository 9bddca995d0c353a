"""Withholding under concurrent settlement (several processes, PostgreSQL): nothing lost, nothing repaid twice,
never more than principal + fee, no deadlock between settlers of different providers' leases."""

import contextlib
import multiprocessing
import random

import pytest
from django.db import connection, connections
from django.db.models import Sum

from billing.models import AccountKind, Entry
from billing.selectors.ledger import ledger_verify
from billing.services.metering import usage_ingest
from billing.services.settlement import lease_settle, usage_settle_pending
from common.errors import DomainError
from common.money import MICROS
from financing.models import Advance, AdvanceRepayment, AdvanceStatus
from financing.services.advances import advance_payoff_early
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.lenders import advance_fund
from tests.billing.helpers import open_lease
from tests.factories import GPUModelFactory, NodeFactory
from tests.financing.support import earn, lender, season, staff_user

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks and several processes"),
]
LEASES = list(range(501, 513))


def _settler(worker: int, rounds: int) -> None:
    connections.close_all()
    rng = random.Random(worker)
    for _ in range(rounds):
        if worker % 2:
            usage_settle_pending(batch_size=4)
        else:
            for ref in rng.sample(LEASES, len(LEASES)):
                lease_settle(lease_ref=ref)
    connections.close_all()


def _payer(provider_id: int, advance_id: int) -> None:
    connections.close_all()
    from django.contrib.auth.models import User

    user = User.objects.get(pk=provider_id)
    for _ in range(10):
        with contextlib.suppress(DomainError):  # the payable may be short, or the advance repaid already
            advance_payoff_early(provider_user=user, advance_id=advance_id, amount_micros=5 * MICROS)
    connections.close_all()


def test_concurrent_settlers_withhold_exactly() -> None:
    model = GPUModelFactory()
    staff = staff_user()
    lenders = [lender(capital_micros=10_000 * MICROS) for _ in range(2)]
    advances, nodes = [], []
    for _ in range(2):
        node = season(NodeFactory(gpu_model=model))
        earn(provider_user=node.provider.user, node_id=node.pk, charge_micros=6_000 * MICROS)
        app = advance_application_submit(provider_user=node.provider.user, gpu_model_slug=model.slug, count=1)
        advance = advance_application_approve(staff_user=staff, application_id=app.pk)
        advance = advance_fund(lender_user=lenders[0], advance_id=advance.pk, amount_micros=599 * MICROS)
        advance = advance_fund(lender_user=lenders[1], advance_id=advance.pk)
        assert advance.status == AdvanceStatus.ACTIVE
        advances.append(advance)
        nodes.append(node)
    # Leases alternate between the two providers, so batches touch both advances in either order. Each lease has
    # 8 GPUs the broker observed running for 300,000 s (its clock, THE RULE): 2.4M GPU-s, all that is reported below.
    for i, ref in enumerate(LEASES):
        node = nodes[i % 2]
        open_lease(
            lease_ref=ref,
            price_micros=3_600_000,
            gpu_count=8,
            observed_s=300_000,
            hold=10**10,
            node_id=node.pk,
            provider=node.provider.user,
        )
    for seq in range(40):
        for i, ref in enumerate(LEASES):
            usage_ingest(node_id=nodes[i % 2].pk, reports=[{"lease_id": ref, "seq": seq, "gpu_seconds": 60_000}])
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_settler, args=(w, 6)) for w in range(4)]
    procs += [ctx.Process(target=_payer, args=(a.provider_id, a.pk)) for a in advances]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    usage_settle_pending()
    for advance in advances:
        advance.refresh_from_db()
        # 12 leases × 40 × 60,000 GPU-s × $0.001 = $28,800 of usage: more than enough to repay both.
        assert advance.status == AdvanceStatus.REPAID
        assert advance.repaid_micros == advance.due_micros
        recorded = AdvanceRepayment.objects.filter(advance=advance).aggregate(s=Sum("amount_micros"))["s"]
        assert recorded == advance.due_micros
    credits = Entry.objects.filter(account__kind=AccountKind.LENDER_RECEIVABLE).aggregate(s=Sum("amount"))["s"]
    assert credits == sum(a.due_micros for a in Advance.objects.all())
    report = ledger_verify()
    assert report.ok, report.violations
