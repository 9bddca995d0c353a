from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_gpu_catalog(sender: AppConfig, *, using: str = "default", **kwargs: Any) -> None:
    from marketplace.services.catalog import catalog_sync

    catalog_sync(using=using)


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace: parties, GPU catalog, fleets, nodes"

    def ready(self) -> None:
        post_migrate.connect(_sync_gpu_catalog, sender=self, dispatch_uid="marketplace.sync_gpu_catalog")
