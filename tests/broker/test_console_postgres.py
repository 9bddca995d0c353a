"""Manual assignment racing another manual assignment on PostgreSQL: one wins, the other is a clear 409,
never a double-booked GPU and never an unhandled IntegrityError."""

import threading
from typing import Any

import pytest
from django.db import connection

from broker.models import Lease, LeaseSlot
from broker.services.console import job_assign_manual
from common.errors import Conflict
from common.models import AuditLog
from tests.factories import CustomerFactory, JobFactory, NodeFactory, UserFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (exclusion constraint, threads)"),
]

ROUNDS = 6


@pytest.mark.django_db(transaction=True)
def test_two_staff_assigning_the_same_gpus_at_once() -> None:
    staff = UserFactory(is_staff=True)
    customer: Any = CustomerFactory()
    for _ in range(ROUNDS):
        node: Any = NodeFactory(gpu_count=2)
        jobs = [
            JobFactory(customer=customer, name=f"j{i}", gpu_count=2, image="i", duration_seconds=3600) for i in range(2)
        ]
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def assign(job_id: int, node_id: int = node.pk, gate: threading.Barrier = barrier) -> None:
            try:
                gate.wait(timeout=10)
                job_assign_manual(job_id=job_id, node_id=node_id, by=staff)
                outcomes.append("leased")
            except Conflict as exc:
                outcomes.append(f"conflict:{exc.code}")
            except Exception as exc:  # noqa: BLE001 — recorded, the assertion below shows it
                outcomes.append(f"error:{type(exc).__name__}:{exc}")
            finally:
                connection.close()

        threads = [threading.Thread(target=assign, args=(job.pk,)) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        # The loser is refused by the service's overlap check or by the exclusion constraint (code gpu_taken).
        assert sorted(outcomes)[1] == "leased" and sorted(outcomes)[0].startswith("conflict:"), outcomes
        assert Lease.objects.filter(node=node).count() == 1
        assert sorted(LeaseSlot.objects.filter(node=node).values_list("slot", flat=True)) == [0, 1]
    assert AuditLog.objects.filter(action="job.assign").count() == ROUNDS
