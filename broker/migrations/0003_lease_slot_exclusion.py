"""PostgreSQL forbids two LeaseSlots holding the same GPU of a node at overlapping times.

btree_gist lets a GiST index combine equality (node, slot) with range overlap (&&) on the period.
On other databases (SQLite) this is a no-op; the matching commit re-checks overlaps under the
database's write lock instead (broker/services/leases.py `lease_slots_conflicting`).
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "ALTER TABLE broker_leaseslot ADD CONSTRAINT leaseslot_no_overlap EXCLUDE USING gist "
    "(node_id WITH =, slot WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&)",
]
BACKWARD = ["ALTER TABLE broker_leaseslot DROP CONSTRAINT IF EXISTS leaseslot_no_overlap"]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in FORWARD:
        schema_editor.execute(sql)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in BACKWARD:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("broker", "0002_match_round")]

    operations = [migrations.RunPython(forward, backward)]
