"""The notifications page: which events go by e-mail and to the webhooks, the webhooks (with their signing
secret), and the delivery log. Each user sees and changes only its own."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from common.errors import DomainError, NotFound
from notify.models import EventKind, WebhookDelivery, WebhookEndpoint
from notify.services.events import endpoint_add, endpoint_delete, preference_for, preference_set

LOG_ROWS = 50


@login_required
@require_http_methods(["GET", "POST"])
def notify_settings(request: HttpRequest) -> HttpResponse:
    user = request.user
    user_id = int(user.pk or 0)
    status = 200
    if request.method == "POST":
        try:
            if request.POST.get("action") == "webhook":
                endpoint_add(user=user, url=request.POST.get("url", "").strip())  # type: ignore[arg-type]
                messages.success(request, "Webhook added; its signing secret is below.")
            else:
                preference_set(
                    user=user,  # type: ignore[arg-type]
                    email_events=request.POST.getlist("email"),
                    webhook_events=request.POST.getlist("webhook"),
                )
                messages.success(request, "Notification choices saved.")
            return redirect("notify:settings")
        except DomainError as exc:
            messages.error(request, exc.message)
            status = exc.status_code
    pref = preference_for(user=user)  # type: ignore[arg-type]
    context = {
        "kinds": [(k.value, k.label, k.value in pref.email_events, k.value in pref.webhook_events) for k in EventKind],
        "endpoints": WebhookEndpoint.objects.filter(user_id=user_id).order_by("created_at"),
        "deliveries": WebhookDelivery.objects.filter(endpoint__user_id=user_id)
        .select_related("endpoint")
        .order_by("-created_at", "-id")[:LOG_ROWS],
        "has_email": bool(getattr(user, "email", "")),
    }
    return render(request, "notify/settings.html", context, status=status)


@login_required
@require_POST
def webhook_delete(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    try:
        endpoint_delete(user=request.user, endpoint_id=endpoint_id)  # type: ignore[arg-type]
    except NotFound as exc:
        raise Http404(exc.message) from exc
    messages.success(request, "Webhook deleted.")
    return redirect("notify:settings")
