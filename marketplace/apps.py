from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_gpu_catalog(sender: AppConfig, *, using: str = "default", **kwargs: Any) -> None:
    from django.db import connections

    from marketplace.models import GPUModel
    from marketplace.services.catalog import catalog_sync

    # After `migrate marketplace zero` the table is gone: nothing to sync.
    if GPUModel._meta.db_table in connections[using].introspection.table_names():
        catalog_sync(using=using)


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace: parties, GPU catalog, fleets, nodes"

    def ready(self) -> None:
        from common.metrics import register_collector
        from marketplace.metrics import marketplace_metrics

        post_migrate.connect(_sync_gpu_catalog, sender=self, dispatch_uid="marketplace.sync_gpu_catalog")
        register_collector(name="marketplace", collect=marketplace_metrics)
