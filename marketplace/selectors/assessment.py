"""Reads of fleet assessments, always scoped to the provider that owns them."""

from django.db.models import QuerySet

from common.errors import NotFound
from marketplace.models import FleetAssessment, Provider


def fleet_assessment_list(*, provider: Provider) -> QuerySet[FleetAssessment]:
    return FleetAssessment.objects.filter(provider=provider).order_by("-created_at", "-pk")


def fleet_assessment_get(*, provider: Provider, assessment_id: int) -> FleetAssessment:
    """The provider's own assessment; another provider's (or a missing one) is NotFound, never a 403 leak."""
    assessment = FleetAssessment.objects.filter(provider=provider, pk=assessment_id).first()
    if assessment is None:
        raise NotFound(f"No fleet assessment {assessment_id}.")
    return assessment
