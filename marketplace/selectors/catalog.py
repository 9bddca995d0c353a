"""Reads of the GPU catalog."""

from django.db.models import QuerySet

from common.errors import NotFound, ValidationFailed
from marketplace.models import GPUModel, Tier, Vendor


def gpu_model_list(*, tier: str | None = None, vendor: str | None = None) -> QuerySet[GPUModel]:
    """Catalog models, optionally filtered; an unknown tier or vendor is a ValidationFailed naming the allowed ones."""
    queryset = GPUModel.objects.all()
    if tier:
        if tier not in Tier.values:
            raise ValidationFailed(
                f"Unknown tier {tier!r}; allowed: {', '.join(Tier.values)}.", details={"tier": Tier.values}
            )
        queryset = queryset.filter(tier=tier)
    if vendor:
        if vendor not in Vendor.values:
            raise ValidationFailed(
                f"Unknown vendor {vendor!r}; allowed: {', '.join(Vendor.values)}.", details={"vendor": Vendor.values}
            )
        queryset = queryset.filter(vendor=vendor)
    return queryset


def gpu_model_get(*, slug: str) -> GPUModel:
    model = GPUModel.objects.filter(slug=slug).first()
    if model is None:
        raise NotFound(f"No GPU model with slug {slug!r}.")
    return model
