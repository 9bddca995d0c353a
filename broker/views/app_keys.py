"""Customer portal: the account's public SSH keys (list, add, delete). Another customer's key is a 404."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from broker.selectors.connect import ssh_keys_for
from broker.services.ssh_keys import ssh_key_add, ssh_key_delete
from broker.views.app import customer_of, customer_required
from common.errors import DomainError, NotFound


@customer_required
@require_http_methods(["GET", "POST"])
def ssh_keys(request: HttpRequest) -> HttpResponse:
    error = ""
    status = 200
    if request.method == "POST":
        try:
            key = ssh_key_add(
                customer=customer_of(request),
                public_key=request.POST.get("public_key", ""),
                name=request.POST.get("name", "").strip(),
            )
        except DomainError as exc:
            error, status = exc.message, exc.status_code
        else:
            messages.success(request, f"SSH key {key.fingerprint} added.")
            return redirect("app:ssh_keys")
    context = {"keys": ssh_keys_for(customer=customer_of(request)), "error": error, "posted": request.POST}
    return render(request, "app/ssh_keys.html", context, status=status)


@customer_required
@require_POST
def ssh_key_delete_view(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        ssh_key_delete(customer=customer_of(request), key_id=key_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    messages.success(request, "SSH key deleted.")
    return redirect("app:ssh_keys")
