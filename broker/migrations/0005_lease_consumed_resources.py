"""Leases hold consumable node resources: CPU cores, RAM and disk (GPUs × the job's per-GPU minimums).
Leases that still hold their node get their amounts from their job."""

from typing import Any

from django.db import migrations, models


def _fill(apps: Any, schema_editor: Any) -> None:
    lease_model = apps.get_model("broker", "Lease")
    for lease in lease_model.objects.filter(state__in=("reserved", "active")).select_related("job"):
        job = lease.job
        lease.cpu_cores = lease.gpu_count * (job.min_cpu_cores_per_gpu or 0)
        lease.ram_gb = lease.gpu_count * (job.min_ram_gb_per_gpu or 0)
        lease.disk_gb = lease.gpu_count * (job.min_disk_gb_per_gpu or 0)
        lease.save(update_fields=["cpu_cores", "ram_gb", "disk_gb"])


class Migration(migrations.Migration):

    dependencies = [
        ('broker', '0004_job_request_fingerprint'),
    ]

    operations = [
        migrations.AddField(
            model_name='lease',
            name='cpu_cores',
            field=models.PositiveIntegerField(default=0, help_text='CPU cores of the node this lease holds'),
        ),
        migrations.AddField(
            model_name='lease',
            name='disk_gb',
            field=models.PositiveIntegerField(default=0, help_text='Disk (GB) of the node this lease holds'),
        ),
        migrations.AddField(
            model_name='lease',
            name='ram_gb',
            field=models.PositiveIntegerField(default=0, help_text='RAM (GB) of the node this lease holds'),
        ),
        migrations.RunPython(_fill, migrations.RunPython.noop),
    ]
