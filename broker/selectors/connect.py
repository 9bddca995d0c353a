"""How a customer reaches a running job: the SSH command and a URL per HTTP port, from the node's public address
and the port mapping the agent reported. Only for the job's customer and staff (the callers check)."""

from typing import Any

from broker.models import Job, Lease, SshKey
from broker.workload_templates import TEMPLATE_BY_SLUG, template_token
from marketplace.models import Customer

SSH_PORT = 22
SSH_USER = "root"


def ssh_keys_for(*, customer: Customer) -> list[SshKey]:
    return list(SshKey.objects.filter(customer=customer).order_by("created_at", "id"))


def job_connect(*, job: Job, lease: Lease | None) -> dict[str, Any] | None:
    """{host, ssh: {command, args, user, host, port} | None, urls: [{port, host_port, name, url}], note} for a
    job whose live lease has reported its ports; None before that (or once it ended)."""
    if lease is None or not lease.port_map:
        return None
    host = lease.node.public_host
    template = TEMPLATE_BY_SLUG.get(job.template)
    if not host:
        return {"host": None, "ssh": None, "urls": [], "note": "The provider has not set the node's public address."}
    ssh = None
    urls = []
    for mapping in sorted(lease.port_map, key=lambda m: m["container"]):
        port, host_port = int(mapping["container"]), int(mapping["host"])
        if port == SSH_PORT:
            args = ["-p", str(host_port), f"{SSH_USER}@{host}"]
            ssh = {"command": "ssh " + " ".join(args), "args": args, "user": SSH_USER, "host": host, "port": host_port}
            continue
        suffix = "/"
        label = f"port {port}"
        if template is not None:
            label = template.port_labels.get(port, label)
            if port in template.port_labels:
                suffix = template.url_suffix.replace("{token}", template_token(job_id=job.pk))
        urls.append({"port": port, "host_port": host_port, "name": label, "url": f"http://{host}:{host_port}{suffix}"})
    return {"host": host, "ssh": ssh, "urls": urls, "note": template.connects if template else ""}
