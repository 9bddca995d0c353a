"""Customer portal offer search: the query-language box plus filters, results updating live with htmx.

Without JavaScript the form submits (GET) to the page itself, which renders the same results.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from broker.forms import OfferSearchForm, form_errors_text
from broker.selectors.offer_query import OfferQueryError
from broker.selectors.offers import Offer, offer_search
from broker.views.app import customer_required
from marketplace.selectors.nodes import UNVERIFIED_NODE_RULE

RESULT_LIMIT = 100


def _results_context(request: HttpRequest) -> dict[str, object]:
    form = OfferSearchForm(request.GET or None)
    offers: list[Offer] = []
    error = ""
    query = ""
    if request.GET and not form.is_valid():
        error = form_errors_text(form)
    else:
        if form.is_bound:
            query = form.query()
            order = form.cleaned_data.get("order") or None
        else:
            order = None
        try:
            offers = offer_search(q=query, order=order, limit=RESULT_LIMIT)
        except OfferQueryError as exc:
            error = exc.message
    return {
        "form": form,
        "offers": offers,
        "error": error,
        "query": query,
        "limit": RESULT_LIMIT,
        "unverified_rule": UNVERIFIED_NODE_RULE,
    }


@customer_required
@vary_on_headers("HX-Request")
def search(request: HttpRequest) -> HttpResponse:
    """The page; an htmx request (the live filter, which also pushes the URL) gets the results alone."""
    context = _results_context(request)
    htmx = getattr(request, "htmx", None)
    if htmx and not htmx.history_restore_request:
        return render(request, "app/_offer_results.html", context)
    return render(request, "app/search.html", context)


@customer_required
def search_results(request: HttpRequest) -> HttpResponse:
    """The results table alone (the htmx target)."""
    return render(request, "app/_offer_results.html", _results_context(request))
