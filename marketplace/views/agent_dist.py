"""The node agent for providers' rigs: the wheel, the install script (public: neither holds a secret) and the
per-node install page (the node's provider only)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from marketplace.services.agent_dist import agent_wheel
from marketplace.views.portal import _own_node, provider_required


def _server(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


@require_GET
def agent_wheel_download(request: HttpRequest, filename: str) -> HttpResponse:
    wheel = agent_wheel()
    if filename != wheel.filename:
        return HttpResponse(f"No such file; the agent is {wheel.filename}.\n", status=404, content_type="text/plain")
    response = HttpResponse(wheel.content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{wheel.filename}"'
    response["X-Content-SHA256"] = wheel.sha256
    return response


@require_GET
def agent_install_script(request: HttpRequest) -> HttpResponse:
    wheel = agent_wheel()
    body = render_to_string(
        "agent/install.sh", {"server": _server(request), "wheel": wheel.filename, "version": wheel.version}
    )
    return HttpResponse(body, content_type="text/x-shellscript; charset=utf-8")


@provider_required
@require_GET
def node_install(request: HttpRequest, node_id: int) -> HttpResponse:
    node = _own_node(request, node_id)
    wheel = agent_wheel()
    server = _server(request)
    context = {
        "node": node,
        "server": server,
        "wheel": wheel,
        "script_command": f"curl -fsSL {server}/agent/install.sh | sudo RIGSHIFT_NODE_TOKEN=rsn_… bash",
        "manual": [
            "python3 -m venv /opt/rigshift-agent",
            f"/opt/rigshift-agent/bin/pip install {server}/agent/{wheel.filename} nvidia-ml-py",
            "/opt/rigshift-agent/bin/rigshift-agent doctor",
            f"RIGSHIFT_NODE_TOKEN=rsn_… /opt/rigshift-agent/bin/rigshift-agent run --server {server}",
        ],
    }
    return render(request, "provider/node_install.html", context)
