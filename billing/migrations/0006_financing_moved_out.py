# Financing became its own app: its models leave billing's state, and their tables are renamed billing_* →
# financing_* (rows, keys and constraints stay). financing/migrations/0001_financing_from_billing.py takes them
# into financing's state. Works on a fresh database (0003 creates the tables, this renames them) and on one
# migrated with the old history alike.

from django.db import migrations

# Dependents first, so that no model left in billing's state points at one already removed.
MOVED = [
    'collateral',
    'advanceevent',
    'advancerepayment',
    'advancefunding',
    'advance',
    'advanceapplication',
    'reservedcontractcharge',
    'reservedcontract',
    'capitalcommitment',
    'lenderpreference',
]


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0005_storage_egress_metering'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.AlterModelTable(name=name, table=f'financing_{name}') for name in MOVED],
            state_operations=[migrations.DeleteModel(name=name) for name in MOVED],
        ),
    ]
