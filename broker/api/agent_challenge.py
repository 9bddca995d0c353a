"""The node agent's compute challenge (`/api/v1/agent/challenge…`): fetch, commit, reveal.

See marketplace/services/challenge.py for what is judged and rigshift_agent/challenge.py for the work. The
server's clock runs from the first fetch of a challenge to the receipt of the commitment.
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from broker.api.agent import AgentView
from marketplace.models import ChallengeState, NodeChallenge
from marketplace.services.challenge import (
    challenge_spec,
    node_challenge_commit,
    node_challenge_deliver,
    node_challenge_reveal,
)

MAX_REVEALS = 16
_B64 = r"^[A-Za-z0-9+/=]{0,40000}$"
_ERRORS = {
    400: OpenApiResponse(description="Invalid body: `detail` says which field and why."),
    401: OpenApiResponse(description="Missing, invalid or revoked node token, or not a node token."),
    404: OpenApiResponse(description="No such challenge for this node."),
    409: OpenApiResponse(description="The challenge is not in the state this step needs."),
}


class ChallengeSpecSerializer(serializers.Serializer[Any]):
    challenge_id = serializers.IntegerField()
    seed = serializers.CharField()
    gpus = serializers.IntegerField()
    items = serializers.IntegerField(help_text="Batch items per GPU (sized to most of the claimed VRAM).")
    m = serializers.IntegerField()
    k = serializers.IntegerField()
    rounds = serializers.IntegerField()
    deadline_s = serializers.FloatField(help_text="Past this many seconds the answer fails as too slow.")


class ChallengeFetchOutputSerializer(serializers.Serializer[Any]):
    challenge = ChallengeSpecSerializer(allow_null=True, help_text="null when no challenge waits.")


class ChallengeCommitInputSerializer(serializers.Serializer[Any]):
    challenge_id = serializers.IntegerField(min_value=1)
    digest = serializers.RegexField(r"^([0-9a-f]{64})?$", allow_blank=True, help_text="Merkle root (hex SHA-256).")
    compute_s = serializers.FloatField(min_value=0, max_value=86_400, help_text="Seconds the multiplications took.")
    backend = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")
    gave_up = serializers.BooleanField(required=False, default=False, help_text="Stopped at the deadline.")


class ChallengeOutcomeSerializer(serializers.Serializer[Any]):
    challenge_id = serializers.IntegerField()
    state = serializers.CharField()
    rows = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="[gpu, item, row] to reveal next (empty once the challenge is finished).",
    )
    verdict = serializers.CharField(help_text="Why it failed ('' while open or when it passed).")
    measured_tflops = serializers.FloatField(allow_null=True, help_text="Per GPU, bounded by the server's clock.")


class ChallengeRevealRowSerializer(serializers.Serializer[Any]):
    gpu = serializers.IntegerField(min_value=0, max_value=63)
    item = serializers.IntegerField(min_value=0, max_value=1_000_000)
    row = serializers.IntegerField(min_value=0, max_value=1_000_000)
    values = serializers.RegexField(_B64, help_text="The final row: little-endian int16, base64.")
    fingerprints = serializers.RegexField(_B64, help_text="The item's m × 2 fingerprints: little-endian int16, base64.")
    path = serializers.ListField(child=serializers.RegexField(r"^[0-9a-f]{64}$"), max_length=40)


class ChallengeRevealInputSerializer(serializers.Serializer[Any]):
    challenge_id = serializers.IntegerField(min_value=1)
    rows = serializers.ListField(child=ChallengeRevealRowSerializer(), max_length=MAX_REVEALS)


def _outcome(challenge: NodeChallenge) -> dict[str, Any]:
    open_rows = challenge.state == ChallengeState.ANSWERED
    return {
        "challenge_id": challenge.pk,
        "state": challenge.state,
        "rows": challenge.picks if open_rows else [],
        "verdict": challenge.verdict,
        "measured_tflops": challenge.measured_tflops,
    }


class AgentChallengeView(AgentView):
    @extend_schema(
        operation_id="agent_challenge_fetch",
        tags=["agent"],
        summary="Fetch the waiting compute challenge (starts the server's clock)",
        description=(
            "`challenge_pending` in the register and heartbeat answers says one waits. The first fetch starts "
            "the clock; a fetch after a restart returns the same challenge and the clock keeps running."
        ),
        request=None,
        responses={200: ChallengeFetchOutputSerializer, 401: _ERRORS[401]},
    )
    def post(self, request: Request) -> Response:
        challenge = node_challenge_deliver(node=self.node(request))
        body: dict[str, Any] = {"challenge": None}
        if challenge is not None:
            spec = challenge_spec(challenge)
            body = {"challenge": {**challenge.params, "challenge_id": spec.challenge_id, "seed": spec.seed}}
        return Response(ChallengeFetchOutputSerializer(body).data)


class AgentChallengeAnswerView(AgentView):
    @extend_schema(
        operation_id="agent_challenge_answer",
        tags=["agent"],
        summary="Commit to the result (stops the clock); get the rows to reveal",
        request=ChallengeCommitInputSerializer,
        responses={200: ChallengeOutcomeSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = ChallengeCommitInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        challenge = node_challenge_commit(
            node=self.node(request),
            challenge_id=data["challenge_id"],
            digest=data["digest"],
            compute_s=data["compute_s"],
            backend=data["backend"],
            gave_up=data["gave_up"],
        )
        return Response(ChallengeOutcomeSerializer(_outcome(challenge)).data)


class AgentChallengeRevealView(AgentView):
    @extend_schema(
        operation_id="agent_challenge_reveal",
        tags=["agent"],
        summary="Reveal the requested rows: the server recomputes them and passes or fails the challenge",
        request=ChallengeRevealInputSerializer,
        responses={200: ChallengeOutcomeSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = ChallengeRevealInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        challenge = node_challenge_reveal(
            node=self.node(request), challenge_id=data["challenge_id"], rows=list(data["rows"])
        )
        return Response(ChallengeOutcomeSerializer(_outcome(challenge)).data)
