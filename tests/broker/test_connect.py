"""SSH keys (API, portal), the node's public address and port range, templates at booking, and the connect block
(API, page) of a job run by the real agent in process; another customer gets 404."""

import base64
import struct
from typing import Any

import pytest
from django.test import Client

from broker.jobspec import JobSpec
from broker.models import Job, SshKey
from broker.selectors.agent import agent_leases
from broker.services.ssh_keys import ssh_key_parse
from broker.workload_templates import TEMPLATE_BY_SLUG, template_token
from common.errors import ValidationFailed
from marketplace.services.nodes import node_connection_update
from tests.broker.test_workload_flow import Clock, _shared_clock, book, lease_for, runner  # noqa: F401
from tests.conftest import client_for
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def ed25519_key(seed: int = 1, comment: str = "me@laptop") -> str:
    kind = b"ssh-ed25519"
    blob = struct.pack(">I", len(kind)) + kind + struct.pack(">I", 32) + bytes([seed]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def test_a_public_key_is_checked_and_fingerprinted() -> None:
    line, fingerprint, comment = ssh_key_parse(public_key=ed25519_key() + "\n")
    assert line == ed25519_key() and fingerprint.startswith("SHA256:") and comment == "me@laptop"
    for bad in ("", "ssh-ed25519", "ssh-dss AAAA", "ssh-ed25519 !!!!", "-----BEGIN OPENSSH PRIVATE KEY-----"):
        with pytest.raises(ValidationFailed):
            ssh_key_parse(public_key=bad)
    mislabelled = ed25519_key().replace("ssh-ed25519", "ssh-rsa", 1)
    with pytest.raises(ValidationFailed, match="holds a ssh-ed25519"):
        ssh_key_parse(public_key=mislabelled)


def test_ssh_keys_api_add_list_delete_and_other_tenant_404() -> None:
    customer = CustomerFactory()
    client = client_for(customer.user)
    created = client.post("/api/v1/ssh-keys/", {"public_key": ed25519_key()}, format="json")
    assert created.status_code == 201 and created.json()["name"] == "me@laptop"
    assert client.post("/api/v1/ssh-keys/", {"public_key": ed25519_key()}, format="json").status_code == 409
    assert client.post("/api/v1/ssh-keys/", {"public_key": "nope"}, format="json").status_code == 400
    assert [k["fingerprint"] for k in client.get("/api/v1/ssh-keys/").json()] == [created.json()["fingerprint"]]
    other = client_for(CustomerFactory().user)
    assert other.get("/api/v1/ssh-keys/").json() == []
    assert other.delete(f"/api/v1/ssh-keys/{created.json()['id']}/").status_code == 404
    assert client.delete(f"/api/v1/ssh-keys/{created.json()['id']}/").status_code == 204
    assert not SshKey.objects.exists()


def test_ssh_keys_page_adds_and_deletes() -> None:
    customer = CustomerFactory()
    page = Client()
    page.force_login(customer.user)
    assert page.post("/app/keys/", {"public_key": ed25519_key(), "name": "laptop"}).status_code == 302
    assert "laptop" in page.get("/app/keys/").content.decode()
    bad = page.post("/app/keys/", {"public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"})
    assert bad.status_code == 400 and "private key" in bad.content.decode()
    key = SshKey.objects.get()
    other = Client()
    other.force_login(CustomerFactory().user)
    assert other.post(f"/app/keys/{key.pk}/delete/").status_code == 404
    assert page.post(f"/app/keys/{key.pk}/delete/").status_code == 302 and not SshKey.objects.exists()


def test_node_connection_settings_are_validated(setup: dict[str, Any]) -> None:
    node = setup["node"]
    node_connection_update(node=node, public_host="203.0.113.5", port_range_start=41000, port_range_end=41099)
    node.refresh_from_db()
    assert (node.public_host, node.port_range_start, node.port_range_end) == ("203.0.113.5", 41000, 41099)
    for host, low, high in (
        ("http://x", 41000, 41001),
        ("a b", 41000, 41001),
        ("ok.example", 80, 90),
        ("ok.example", 5000, 4000),
        ("ok.example", 20000, 40000),
    ):
        with pytest.raises(ValidationFailed):
            node_connection_update(node=node, public_host=host, port_range_start=low, port_range_end=high)


def test_template_fills_the_workload_and_the_booking_wins() -> None:
    spec = JobSpec.from_payload(
        {
            "gpu_count": 1,
            "template": "vllm-openai",
            "env": {"MODEL": "my/model"},
            "max_price": "1",
            "duration_hours": "1",
        },
        booking=True,
    )
    template = TEMPLATE_BY_SLUG["vllm-openai"]
    assert spec.workload.image == template.workload["image"] and spec.workload.ports == (8000,)
    assert spec.workload.env["MODEL"] == "my/model" and spec.workload.command == template.workload["command"]
    with pytest.raises(ValidationFailed) as bad:
        JobSpec.from_payload({"gpu_count": 1, "template": "nope", "image": "i"}, booking=True)
    assert "template" in bad.value.details
    with pytest.raises(ValidationFailed) as err:
        JobSpec.from_payload({"gpu_count": 1, "max_price": "1", "duration_hours": "1"}, booking=True)
    assert "image" in err.value.details


def test_jupyter_template_job_shows_ssh_and_jupyter_connect_and_keys_reach_the_agent(setup: dict[str, Any]) -> None:
    node = setup["node"]
    node_connection_update(node=node, public_host="203.0.113.5", port_range_start=40020, port_range_end=40029)
    setup["client"].post("/api/v1/ssh-keys/", {"public_key": ed25519_key()}, format="json")
    clock = Clock()
    job = book(setup["client"], template="pytorch-jupyter", image="", command="", ports=[])
    assert (job.template, job.ssh, job.ports) == ("pytorch-jupyter", True, [8888])
    lease_for(job, node, clock)
    start = agent_leases(node=node)["start"][0]
    assert start["ssh"] is True and start["ssh_keys"] == [ed25519_key()]
    assert start["env"]["JUPYTER_TOKEN"] == template_token(job_id=job.pk)
    agent = runner(setup["raw"], clock)
    for _ in range(3):
        agent.step()
        clock.advance(5)
    body = setup["client"].get(f"/api/v1/jobs/{job.pk}/").json()
    connect = body["connect"]
    assert connect["ssh"]["command"] == "ssh -p 40021 root@203.0.113.5"
    assert connect["urls"] == [
        {
            "port": 8888,
            "host_port": 40020,
            "name": "Jupyter Lab",
            "url": f"http://203.0.113.5:40020/lab?token={template_token(job_id=job.pk)}",
        }
    ]
    page = Client()
    page.force_login(setup["customer"].user)
    html = page.get(f"/app/jobs/{job.pk}/").content.decode()
    assert "ssh -p 40021 root@203.0.113.5" in html and 'data-copy="#connect-ssh"' in html
    other = client_for(CustomerFactory().user)
    assert other.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert Job.objects.get(pk=job.pk).state == "running"


@pytest.fixture
def setup() -> dict[str, Any]:
    from tests.broker import test_workload_flow

    return test_workload_flow.setup.__wrapped__()
