"""FindCoordinator (key 10), v0-v6: the group or transaction coordinator is this broker.

v4+ takes a batch of keys and answers each. Key types: 0 group, 1 transaction (2 share is
refused). Advertising v0 matters beyond groups: librdkafka enables LZ4 only when FindCoordinator
v0 is in the broker's ApiVersions. Deviation until the group coordinator lands: a client that
goes on to JoinGroup is told JoinGroup is not supported.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 10
MIN_VERSION = 0
MAX_VERSION = 6

GROUP = 0
TRANSACTION = 1


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    services = ctx.services
    key_type = getattr(request, "key_type", GROUP)

    def answer(key: str) -> dict:
        if key_type not in (GROUP, TRANSACTION):
            return dict(
                key=key, node_id=-1, host="", port=-1,
                error_code=ErrorCode.invalid_request, error_message=f"unknown coordinator key type {key_type}",
            )
        if key_type == GROUP and not key:
            return dict(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.invalid_group_id, error_message="group id is empty")
        return dict(
            key=key, node_id=services.node_id, host=services.advertised_host, port=services.advertised_port,
            error_code=ErrorCode.none, error_message=None,
        )

    if ctx.api_version >= 4:
        coordinator = sibling(response, "Coordinator")
        return build(
            response,
            throttle_time=timedelta(0),
            coordinators=tuple(build(coordinator, **answer(key)) for key in request.coordinator_keys),
        )
    return build(response, throttle_time=timedelta(0), **answer(request.key))
