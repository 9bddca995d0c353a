"""The node agent API (`/api/v1/agent/…`): register, heartbeat, leases.

Authentication: `Authorization: Bearer rsn_…`, the node's own token (shown once when the provider
registers the node). The node is always the token's node; a missing, unknown or revoked token, a
user API token, or a session gets 401. Errors are `{"detail": "…", "code": "…"}`.
"""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.agent_auth import IsNodeAgent, NodeAgent, NodeTokenAuthentication
from broker.api.agent_serializers import (
    AgentHeartbeatInputSerializer,
    AgentHeartbeatOutputSerializer,
    AgentLeasesOutputSerializer,
    AgentRegisterInputSerializer,
    AgentRegisterOutputSerializer,
)
from broker.selectors.agent import agent_leases
from broker.services.agent import TokenRefused, agent_heartbeat, agent_register
from common.cache import token_cache_forget
from common.json_body import JsonBodyParser
from marketplace.models import Node
from marketplace.selectors.challenges import node_challenge_pending
from marketplace.services.nodes import NODE_TOKEN_CACHE

_ERRORS = {
    400: OpenApiResponse(description="Invalid body: `detail` says which field and why."),
    401: OpenApiResponse(description="Missing, invalid or revoked node token, or not a node token."),
}


class AgentView(APIView):
    authentication_classes = [NodeTokenAuthentication]
    permission_classes = [IsNodeAgent]
    parser_classes = [JsonBodyParser]

    def node(self, request: Request) -> Node:
        assert isinstance(request.auth, Node)
        return request.auth


class AgentRegisterView(AgentView):
    @extend_schema(
        operation_id="agent_register",
        tags=["agent"],
        summary="Report the node's detected hardware and benchmark",
        description=(
            "Called by the agent at start. Stores the report, sets the node online, and compares the GPUs "
            "with the registration: a different GPU model or count (e.g. registered 8× GeForce RTX 4090, agent "
            "sees 6) is returned in `hardware_mismatch`, takes verification away and blocks it until fixed. "
            "A benchmark far from the catalog figure (below 50% or above 200% of its FP16 TFLOPS or memory "
            "bandwidth) is returned in `benchmark_flag` for staff; it is never the node's `dlperf`, which only a "
            "passed compute challenge sets. A challenge is issued at registration: `challenge_pending` says one "
            "waits (see /agent/challenge). Measured CPU, RAM, disk and network figures replace the declared ones."
        ),
        request=AgentRegisterInputSerializer,
        responses={200: AgentRegisterOutputSerializer, **_ERRORS},
        examples=[
            OpenApiExample(
                "RTX 4090 node",
                request_only=True,
                value={
                    "gpus": [
                        {
                            "index": 0,
                            "name": "NVIDIA GeForce RTX 4090",
                            "vram_gb": 24.0,
                            "pci_device_id": "0x2684",
                            "subsystem_vendor_id": "0x1043",
                        }
                    ],
                    "driver_version": "550.54",
                    "cuda_version": "12.4",
                    "cpu_cores": 32,
                    "ram_gb": 128,
                    "disk_gb": 2000,
                    "inet_down_mbps": 1000,
                    "inet_up_mbps": 500,
                    "benchmark": {"tflops": 150.2, "mem_bandwidth_gbs": 900.0},
                    "agent_version": "0.1.0",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = AgentRegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = agent_register(node=self.node(request), report=dict(serializer.data))
        body = {
            "node_id": result.node_id,
            "verified": result.verified,
            "hardware_mismatch": result.hardware_mismatch,
            "heartbeat_interval_s": result.heartbeat_interval_s,
            "benchmark_flag": result.benchmark_flag,
            "challenge_pending": node_challenge_pending(node_id=result.node_id),
            "public_host": result.public_host,
            "port_range": list(result.port_range),
        }
        return Response(AgentRegisterOutputSerializer(body).data)


# One validator for every heartbeat: `run_validation` keeps no state on the serializer (is_valid does), so a shared
# instance validates exactly as a new one would, without deep-copying its nested fields per request.
_HEARTBEAT_INPUT = AgentHeartbeatInputSerializer()


class AgentHeartbeatView(AgentView):
    def get_authenticators(self) -> list[BaseAuthentication]:
        # The token lookup comes from the cache; the heartbeat statement re-checks it on the node row.
        return [NodeTokenAuthentication(cached=True)]

    @extend_schema(
        operation_id="agent_heartbeat",
        tags=["agent"],
        summary="Liveness, GPU telemetry and per-lease usage",
        description=(
            "Send every `next_heartbeat_s` seconds. `seq` must be unique per node for the node's lifetime: "
            "a repeated `seq` is answered 200 with `duplicate: true` and changes nothing (safe to retry), with "
            "`max_seq`, the highest seq received from this node (an agent that lost its state continues above it). "
            "Sequence numbers may arrive out of order. A heartbeat marks the node online and adds the time "
            "since the previous one to its uptime (when at most the offline threshold). Lease reports go to "
            "metering once per (lease, seq); the first report of a reserved lease makes it active. Reports for "
            "leases that are not this node's are ignored and listed in `ignored_leases`. The broker bills the time "
            "it observed a lease running (activation to exit, end, close or the node's last heartbeat): reports "
            "only shorten it. A heartbeat carrying a report the lease cannot have produced is refused whole with a "
            "400 naming it: an interval in the future, outside the lease's period or longer than four heartbeats "
            "(`usage_outside_lease`), more GPU-seconds, storage or egress than the lease's GPUs, the node's disk or "
            "its upload link allow (`usage_too_high`)."
        ),
        request=AgentHeartbeatInputSerializer,
        responses={200: AgentHeartbeatOutputSerializer, **_ERRORS},
        examples=[
            OpenApiExample(
                "Heartbeat with one lease",
                request_only=True,
                value={
                    "seq": 17,
                    "status": "ok",
                    "gpus": [{"index": 0, "utilisation": 0.93, "temperature_c": 71}],
                    "leases": [
                        {
                            "lease_id": 5,
                            "seq": 3,
                            "gpu_seconds": 120,
                            "utilisation": 0.9,
                            "interval_start": "2026-11-27T10:00:00Z",
                            "interval_end": "2026-11-27T10:02:00Z",
                            "state": "running",
                        }
                    ],
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data: dict[str, Any] = _HEARTBEAT_INPUT.run_validation(request.data)  # 400 with the fields' errors
        agent = request.user
        assert isinstance(agent, NodeAgent)
        try:
            result = agent_heartbeat(
                node=self.node(request),
                seq=data["seq"],
                status=data["status"],
                leases=data.get("leases") or [],
                # validated; stored as JSON for support (datetimes and decimals as strings); the log lives in
                # JobLogLine
                payload={k: v for k, v in data.items() if k != "logs"},
                events=data.get("events") or [],
                logs=data.get("logs") or [],
                token_hash=agent.token_hash,
            )
        except TokenRefused:
            token_cache_forget(kind=NODE_TOKEN_CACHE, token_hash=agent.token_hash)
            raise AuthenticationFailed(
                "This node agent token is no longer valid (revoked or replaced); use the node's current token."
            ) from None
        body = {
            "accepted": result.accepted,
            "duplicate": result.duplicate,
            "max_seq": result.max_seq,
            "next_heartbeat_s": result.next_heartbeat_s,
            "activated_leases": result.activated_leases,
            "ended_leases": result.ended_leases,
            "ignored_leases": result.ignored_leases,
            "challenge_pending": result.challenge_pending,
        }
        return Response(body)  # already the documented shape (AgentHeartbeatOutputSerializer): no second pass


class AgentLeasesView(AgentView):
    @extend_schema(
        operation_id="agent_leases",
        tags=["agent"],
        summary="What this node should run and stop",
        description=(
            "`start`: this node's reserved or active leases whose period has begun or begins within 5 minutes, "
            "with the workload and GPU slots. `stop`: leases ended, preempted or failed in the last hour, and "
            "leases whose period is over; stop anything listed there."
        ),
        responses={200: AgentLeasesOutputSerializer, 401: _ERRORS[401]},
    )
    def get(self, request: Request) -> Response:
        return Response(AgentLeasesOutputSerializer(agent_leases(node=self.node(request))).data)
