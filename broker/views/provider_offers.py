"""/provider/offers/: price offers below the provider's ask, which lease nothing until the provider accepts."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from broker.selectors.price_offers import price_offers_for_provider
from broker.services.price_offers import price_offer_accept, price_offer_decline
from common.decorators import role_required
from common.errors import DomainError, NotFound
from marketplace.models import Provider

provider_required = role_required(
    allowed=lambda user: hasattr(user, "provider"), message="Only provider accounts can answer price offers."
)


def _provider(request: HttpRequest) -> Provider:
    return request.user.provider  # type: ignore[union-attr]


@provider_required
@require_GET
def offers(request: HttpRequest) -> HttpResponse:
    return render(request, "provider/offers.html", {"offers": price_offers_for_provider(provider=_provider(request))})


@provider_required
@require_POST
def offer_accept(request: HttpRequest, offer_id: int) -> HttpResponse:
    try:
        lease = price_offer_accept(offer_id=offer_id, provider=_provider(request))
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Accepted: job {lease.job_id} is leased on your node as lease {lease.pk}.")
    return redirect("offers:list")


@provider_required
@require_POST
def offer_decline(request: HttpRequest, offer_id: int) -> HttpResponse:
    try:
        price_offer_decline(offer_id=offer_id, provider=_provider(request))
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Declined: nothing was leased.")
    return redirect("offers:list")
