"""The curated workload templates: an image with its ports, environment, start command and what it connects to.

A template's `workload` is a partial booking payload of the JobSpec's Workload part (broker/jobspec.py): booking
with `template` fills each workload field the booking leaves empty from it, parsed by that field's own kind, and
merges its environment under the booking's (what the booking gives wins). The job's connect block
(broker/selectors/connect.py) labels each port with the template's words.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class WorkloadTemplate:
    slug: str
    name: str
    workload: Mapping[str, Any]  # payload keys of the JobSpec's Workload part
    connects: str = ""  # what the customer connects to, in words
    port_labels: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    token_env: str = ""  # an access token the server derives per job and hands the agent in this variable
    url_suffix: str = "/"  # appended to the port's URL; `{token}` is the job's token


JUPYTER_COMMAND = (
    "pip install -q jupyterlab && exec jupyter lab --ip=0.0.0.0 --port=8888 --allow-root --no-browser "
    '--ServerApp.token="$JUPYTER_TOKEN" --ServerApp.root_dir=/workspace'
)
VLLM_COMMAND = (
    'exec python3 -m vllm.entrypoints.openai.api_server --host 0.0.0.0 --port 8000 --model "$MODEL" '
    '--api-key "$VLLM_API_KEY"'
)
SSHD_COMMAND = (
    "(command -v sshd >/dev/null || (apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null)) "
    "&& mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"
)


def _payload(**values: Any) -> Mapping[str, Any]:
    return MappingProxyType(values)


TEMPLATES: tuple[WorkloadTemplate, ...] = (
    WorkloadTemplate(
        slug="pytorch-jupyter",
        name="PyTorch with Jupyter",
        workload=_payload(
            image="pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", command=JUPYTER_COMMAND, ports=[8888], ssh=True
        ),
        connects="Jupyter Lab in the browser (the link carries the job's token) and SSH as root.",
        port_labels=MappingProxyType({8888: "Jupyter Lab"}),
        token_env="JUPYTER_TOKEN",
        url_suffix="/lab?token={token}",
    ),
    WorkloadTemplate(
        slug="vllm-openai",
        name="vLLM OpenAI-compatible server",
        workload=_payload(
            image="vllm/vllm-openai:v0.5.4",
            command=VLLM_COMMAND,
            ports=[8000],
            env={"MODEL": "Qwen/Qwen2.5-0.5B-Instruct"},
        ),
        connects="An OpenAI-compatible API at /v1 (chat and completions); the API key is the job's token.",
        port_labels=MappingProxyType({8000: "OpenAI-compatible API"}),
        token_env="VLLM_API_KEY",
        url_suffix="/v1",
    ),
    WorkloadTemplate(
        slug="cuda-ssh",
        name="CUDA base with SSH",
        workload=_payload(image="nvidia/cuda:12.4.1-devel-ubuntu22.04", command=SSHD_COMMAND, ssh=True),
        connects="A shell over SSH as root with CUDA 12.4 and nvcc.",
    ),
)
TEMPLATE_BY_SLUG: Mapping[str, WorkloadTemplate] = MappingProxyType({t.slug: t for t in TEMPLATES})
TEMPLATE_CHOICES: tuple[tuple[str, str], ...] = tuple((t.slug, t.name) for t in TEMPLATES)


def template_token(*, job_id: int) -> str:
    """The job's access token for its template's service (Jupyter, vLLM): derived, never stored."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"workload-token:{job_id}".encode(), hashlib.sha256).hexdigest()[:32]
