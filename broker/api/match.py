"""Matching API: a job's explanation (its customer or staff), recent rounds and run-a-round-now (staff)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.models import Job, MatchRound
from broker.services.explain import job_explain
from broker.services.matching import match_round_run
from common.api import IsCustomer, IsStaff
from common.api_schema import error_responses
from common.errors import NotFound


class ExplanationOut(serializers.Serializer):
    job_id = serializers.IntegerField()
    state = serializers.CharField()
    code = serializers.CharField(help_text="Which requirement emptied the candidate set (or placed/not_pending)")
    message = serializers.CharField(help_text="What to change, in words")
    candidates = serializers.IntegerField()
    details = serializers.DictField()


class MatchRoundOut(serializers.ModelSerializer):
    class Meta:
        model = MatchRound
        fields = [
            "id",
            "shard",
            "started_at",
            "finished_at",
            "jobs_considered",
            "nodes_considered",
            "placed",
            "preempted",
            "snapshot_ms",
            "engine_ms",
            "commit_ms",
            "total_ms",
            "unplaced_reasons",
            "phases",
            "note",
        ]


def _job_for(request: Request, job_id: int) -> Job:
    user: Any = request.user
    qs = Job.objects.all()
    if not user.is_staff:
        customer = getattr(user, "customer", None)
        if customer is None:
            raise NotFound("No such job.")
        qs = qs.filter(customer=customer)
    job = qs.filter(pk=job_id).first()
    if job is None:
        raise NotFound("No such job.")
    return job


class JobExplainView(APIView):
    permission_classes = [IsCustomer | IsStaff]

    @extend_schema(
        operation_id="jobs_explain",
        responses={200: ExplanationOut, **error_responses(401, 403, 404)},
        tags=["jobs"],
        description="Why the job is (not) placed, and what would match.",
    )
    def get(self, request: Request, job_id: int) -> Response:
        explanation = job_explain(job=_job_for(request, job_id))
        return Response(ExplanationOut(explanation).data)


class MatchRoundsView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="match_rounds_list", responses={200: MatchRoundOut(many=True), **error_responses(401, 403)}
    )
    def get(self, request: Request) -> Response:
        return Response(MatchRoundOut(MatchRound.objects.order_by("-started_at", "-id")[:50], many=True).data)

    @extend_schema(
        operation_id="match_rounds_run",
        request=None,
        responses={200: MatchRoundOut, **error_responses(401, 403)},
        description="Run a matching round now (skipped with a note when paused or another matcher runs).",
    )
    def post(self, request: Request) -> Response:
        return Response(MatchRoundOut(match_round_run(shard="default")).data)
