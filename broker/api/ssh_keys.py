"""A customer's public SSH keys over the API (own keys only; another customer's key is a 404)."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.selectors.connect import ssh_keys_for
from broker.services.ssh_keys import ssh_key_add, ssh_key_delete
from common.api import IsCustomer
from common.api_schema import error_responses


class SshKeyIn(serializers.Serializer[dict[str, Any]]):
    public_key = serializers.CharField(max_length=16_384, help_text="One OpenSSH public key line (the .pub file)")
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class SshKeyOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    fingerprint = serializers.CharField()
    public_key = serializers.CharField()
    created_at = serializers.DateTimeField()


class SshKeyListView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(operation_id="ssh_keys_list", responses={200: SshKeyOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        keys = ssh_keys_for(customer=request.user.customer)  # type: ignore[union-attr]
        return Response(SshKeyOut(keys, many=True).data)

    @extend_schema(
        operation_id="ssh_keys_add",
        request=SshKeyIn,
        responses={
            201: SshKeyOut,
            **error_responses(400, 401, 403, 409, d400="Not a public key", d409="Already on the account"),
        },
        description="Add a public SSH key; jobs booked with `ssh` get every key of the account.",
    )
    def post(self, request: Request) -> Response:
        data = SshKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        key = ssh_key_add(
            customer=request.user.customer,  # type: ignore[union-attr]
            public_key=data.validated_data["public_key"],
            name=data.validated_data.get("name", ""),
        )
        return Response(SshKeyOut(key).data, status=status.HTTP_201_CREATED)


class SshKeyDetailView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="ssh_keys_delete", request=None, responses={204: None, **error_responses(401, 403, 404)}
    )
    def delete(self, request: Request, key_id: int) -> Response:
        ssh_key_delete(customer=request.user.customer, key_id=key_id)  # type: ignore[union-attr]
        return Response(status=status.HTTP_204_NO_CONTENT)
