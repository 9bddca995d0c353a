# Financing takes over its models from billing (billing/migrations/0006_financing_moved_out.py removed them from
# billing's state and renamed their tables to financing_*): state only, no table is created. Then the one index
# named after the old table gets its own name, and content types (with their permissions) follow the models.

import django.db.models.deletion
import django.db.models.expressions
from django.conf import settings
from django.db import migrations, models


MODELS = [
    'advance',
    'advanceapplication',
    'advanceevent',
    'advancefunding',
    'advancerepayment',
    'capitalcommitment',
    'collateral',
    'lenderpreference',
    'reservedcontract',
    'reservedcontractcharge',
]


def _move_content_types(apps, schema_editor, *, source, target):
    """Content types of the moved models (and so their permissions) follow them; none exist on a fresh database."""
    content_type = apps.get_model('contenttypes', 'ContentType')
    db = schema_editor.connection.alias
    for model in MODELS:
        if not content_type.objects.using(db).filter(app_label=target, model=model).exists():
            content_type.objects.using(db).filter(app_label=source, model=model).update(app_label=target)


def content_types_to_financing(apps, schema_editor):
    _move_content_types(apps, schema_editor, source='billing', target='financing')


def content_types_to_billing(apps, schema_editor):
    _move_content_types(apps, schema_editor, source='financing', target='billing')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('billing', '0006_financing_moved_out'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('marketplace', '0002_node_storage_egress_prices'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='AdvanceApplication',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('gpu_count', models.PositiveIntegerField()),
                        ('unit_cost_micros', models.BigIntegerField()),
                        ('requested_micros', models.BigIntegerField()),
                        ('status', models.CharField(choices=[('offered', 'Offered (awaiting staff approval)'), ('declined', 'Declined by underwriting'), ('approved', 'Approved (advance open for funding)'), ('rejected', 'Rejected by staff')], max_length=10)),
                        ('offered_gpu_count', models.PositiveIntegerField(default=0)),
                        ('principal_micros', models.BigIntegerField(default=0)),
                        ('fee_micros', models.BigIntegerField(default=0)),
                        ('withhold_bps', models.PositiveIntegerField(default=0)),
                        ('expected_payoff_months', models.DecimalField(blank=True, decimal_places=1, max_digits=6, null=True)),
                        ('min_progress_micros', models.BigIntegerField(default=0, help_text='Minimum repaid per 60 days')),
                        ('decline_reasons', models.JSONField(blank=True, default=list)),
                        ('inputs', models.JSONField(blank=True, default=dict)),
                        ('arithmetic', models.JSONField(blank=True, default=list)),
                        ('rules_version', models.CharField(max_length=20)),
                        ('staff_note', models.CharField(blank=True, max_length=500)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('decided_at', models.DateTimeField(blank=True, null=True)),
                        ('assessment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='marketplace.fleetassessment')),
                        ('gpu_model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='marketplace.gpumodel')),
                        ('node', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='marketplace.node')),
                        ('provider', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='advance_applications', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='Advance',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('gpu_count', models.PositiveIntegerField()),
                        ('principal_micros', models.BigIntegerField()),
                        ('fee_micros', models.BigIntegerField()),
                        ('base_withhold_bps', models.PositiveIntegerField()),
                        ('withhold_bps', models.PositiveIntegerField(help_text='Current rate (raised while delinquent)')),
                        ('expected_payoff_months', models.DecimalField(decimal_places=1, max_digits=6)),
                        ('min_progress_micros', models.BigIntegerField()),
                        ('funded_micros', models.BigIntegerField(default=0)),
                        ('repaid_micros', models.BigIntegerField(default=0)),
                        ('written_off_micros', models.BigIntegerField(default=0)),
                        ('status', models.CharField(choices=[('funding', 'Approved, open for funding'), ('active', 'Active (repaying)'), ('delinquent', 'Delinquent'), ('repaid', 'Repaid'), ('defaulted', 'Defaulted (remaining written off)'), ('cancelled', 'Cancelled')], default='funding', max_length=10)),
                        ('disburse_to', models.CharField(choices=[('provider', 'The provider'), ('vendor', 'A hardware vendor')], default='provider', max_length=10)),
                        ('vendor_name', models.CharField(blank=True, max_length=200)),
                        ('disbursement_ref', models.CharField(blank=True, max_length=200)),
                        ('approved_at', models.DateTimeField()),
                        ('disbursed_at', models.DateTimeField(blank=True, null=True)),
                        ('closed_at', models.DateTimeField(blank=True, null=True)),
                        ('window_start', models.DateTimeField(blank=True, null=True)),
                        ('window_repaid_base', models.BigIntegerField(default=0)),
                        ('consecutive_shortfalls', models.PositiveSmallIntegerField(default=0)),
                        ('collateral_offline_since', models.DateTimeField(blank=True, null=True)),
                        ('disbursement_transaction', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.ledgertransaction')),
                        ('gpu_model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='marketplace.gpumodel')),
                        ('node', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='marketplace.node')),
                        ('provider', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='advances', to=settings.AUTH_USER_MODEL)),
                        ('application', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='advance', to='financing.advanceapplication')),
                    ],
                    options={
                        'ordering': ['-approved_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='AdvanceEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(max_length=30)),
                        ('message', models.CharField(max_length=500)),
                        ('data', models.JSONField(blank=True, default=dict)),
                        ('created_at', models.DateTimeField()),
                        ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('advance', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='financing.advance')),
                    ],
                    options={
                        'ordering': ['created_at', 'id'],
                    },
                ),
                migrations.CreateModel(
                    name='AdvanceFunding',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('amount_micros', models.BigIntegerField()),
                        ('received_micros', models.BigIntegerField(default=0)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('advance', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='fundings', to='financing.advance')),
                        ('lender', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='advance_fundings', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['id'],
                    },
                ),
                migrations.CreateModel(
                    name='AdvanceRepayment',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('withholding', 'Withheld from a settlement'), ('early_payoff', "Early payoff from the provider's balance")], max_length=12)),
                        ('source_key', models.CharField(help_text='Idempotency key of the ledger transaction', max_length=200)),
                        ('lease_ref', models.BigIntegerField(blank=True, null=True)),
                        ('amount_micros', models.BigIntegerField()),
                        ('created_at', models.DateTimeField(default=None, null=True)),
                        ('advance', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='repayments', to='financing.advance')),
                        ('funding', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='repayments', to='financing.advancefunding')),
                    ],
                    options={
                        'ordering': ['id'],
                    },
                ),
                migrations.CreateModel(
                    name='CapitalCommitment',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('amount_micros', models.BigIntegerField()),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='pending', max_length=10)),
                        ('gateway', models.CharField(max_length=20)),
                        ('gateway_ref', models.CharField(blank=True, max_length=200)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('ledger_transaction', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, to='billing.ledgertransaction')),
                        ('lender', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='capital_commitments', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='Collateral',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('gpu_count', models.PositiveSmallIntegerField()),
                        ('tagged_at', models.DateTimeField()),
                        ('released_at', models.DateTimeField(blank=True, null=True)),
                        ('advance', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='collateral', to='financing.advance')),
                        ('node', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='collateral', to='marketplace.node')),
                    ],
                ),
                migrations.CreateModel(
                    name='LenderPreference',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('mode', models.CharField(choices=[('auto', 'Automatic: fund every matching advance pro rata'), ('hand_picked', 'Hand-picked: I choose each advance')], default='hand_picked', max_length=12)),
                        ('max_per_advance_micros', models.BigIntegerField(default=0)),
                        ('tiers', models.JSONField(blank=True, default=list)),
                        ('max_payoff_months', models.PositiveSmallIntegerField(default=24)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('lender', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='lender_preference', to=settings.AUTH_USER_MODEL)),
                    ],
                ),
                migrations.CreateModel(
                    name='ReservedContract',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('gpu_count', models.PositiveSmallIntegerField()),
                        ('term_months', models.PositiveSmallIntegerField()),
                        ('list_price_micros', models.BigIntegerField(help_text='On-demand price per GPU-hour at booking')),
                        ('discount_bps', models.PositiveIntegerField()),
                        ('monthly_micros', models.BigIntegerField(help_text='What the customer pays each month')),
                        ('starts_at', models.DateTimeField()),
                        ('ends_at', models.DateTimeField()),
                        ('months_paid', models.PositiveSmallIntegerField(default=0)),
                        ('status', models.CharField(choices=[('active', 'Active'), ('completed', 'Completed'), ('cancelled', 'Cancelled'), ('lapsed', 'Lapsed (customer did not pay)')], default='active', max_length=10)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('customer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='reserved_contracts', to=settings.AUTH_USER_MODEL)),
                        ('gpu_model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='marketplace.gpumodel')),
                        ('node', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='reserved_contracts', to='marketplace.node')),
                        ('provider', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='provider_reserved_contracts', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.AddField(
                    model_name='advanceapplication',
                    name='reserved_contract',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='financing.reservedcontract'),
                ),
                migrations.CreateModel(
                    name='ReservedContractCharge',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('month_index', models.PositiveSmallIntegerField()),
                        ('amount_micros', models.BigIntegerField()),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('contract', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='charges', to='financing.reservedcontract')),
                        ('ledger_transaction', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.ledgertransaction')),
                    ],
                    options={
                        'ordering': ['month_index'],
                    },
                ),
                migrations.AddConstraint(
                    model_name='advance',
                    constraint=models.CheckConstraint(condition=models.Q(('principal_micros__gt', 0)), name='advance_principal_positive'),
                ),
                migrations.AddConstraint(
                    model_name='advance',
                    constraint=models.CheckConstraint(condition=models.Q(('repaid_micros__lte', django.db.models.expressions.CombinedExpression(models.F('principal_micros'), '+', models.F('fee_micros')))), name='advance_repaid_at_most_due'),
                ),
                migrations.AddConstraint(
                    model_name='advance',
                    constraint=models.CheckConstraint(condition=models.Q(('funded_micros__lte', models.F('principal_micros'))), name='advance_funded_at_most'),
                ),
                migrations.AddConstraint(
                    model_name='advancefunding',
                    constraint=models.UniqueConstraint(fields=('advance', 'lender'), name='advance_funding_once_per_lender'),
                ),
                migrations.AddConstraint(
                    model_name='advancefunding',
                    constraint=models.CheckConstraint(condition=models.Q(('amount_micros__gt', 0)), name='advance_funding_positive'),
                ),
                migrations.AddIndex(
                    model_name='advancerepayment',
                    index=models.Index(fields=['lease_ref'], name='billing_adv_lease_r_62d255_idx'),
                ),
                migrations.AddConstraint(
                    model_name='advancerepayment',
                    constraint=models.UniqueConstraint(fields=('source_key', 'funding'), name='repayment_once_per_source_funding'),
                ),
                migrations.AddConstraint(
                    model_name='capitalcommitment',
                    constraint=models.CheckConstraint(condition=models.Q(('amount_micros__gt', 0)), name='capital_positive'),
                ),
                migrations.AddConstraint(
                    model_name='collateral',
                    constraint=models.UniqueConstraint(fields=('advance', 'node'), name='collateral_once_per_node'),
                ),
                migrations.AddConstraint(
                    model_name='reservedcontract',
                    constraint=models.CheckConstraint(condition=models.Q(('gpu_count__gte', 1)), name='reserved_gpus_positive'),
                ),
                migrations.AddConstraint(
                    model_name='reservedcontract',
                    constraint=models.CheckConstraint(condition=models.Q(('term_months__gte', 1)), name='reserved_term_positive'),
                ),
                migrations.AddConstraint(
                    model_name='reservedcontract',
                    constraint=models.CheckConstraint(condition=models.Q(('monthly_micros__gt', 0)), name='reserved_monthly_positive'),
                ),
                migrations.AddConstraint(
                    model_name='advanceapplication',
                    constraint=models.CheckConstraint(condition=models.Q(('gpu_count__gte', 1)), name='application_count_positive'),
                ),
                migrations.AddConstraint(
                    model_name='reservedcontractcharge',
                    constraint=models.UniqueConstraint(fields=('contract', 'month_index'), name='reserved_charge_once_per_month'),
                ),
            ],
        ),
        migrations.RenameIndex(
            model_name='advancerepayment',
            new_name='repayment_lease_ref_idx',
            old_name='billing_adv_lease_r_62d255_idx',
        ),
        migrations.RunPython(content_types_to_financing, content_types_to_billing),
    ]
