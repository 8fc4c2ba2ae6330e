"""JoinGroup (key 11), v0-v9.

v0-v1 stay for older librdkafka (Kafka 4.0.1 restored them). v0 has no rebalance timeout: the
session timeout serves as both, as in Kafka. From v4 a new dynamic member first gets
MEMBER_ID_REQUIRED with its id (KIP-394); from v5 static members (KIP-345). The request parks
until the rebalance completes. A restarted static leader with unchanged subscriptions is answered
with skip_assignment (v9+, KIP-814) instead of a rebalance.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.protocol.errors import ErrorCode
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, error_response, sibling

API_KEY = 11
MIN_VERSION = 0
MAX_VERSION = 9


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        return error_response(ctx.response_class, ErrorCode.group_authorization_failed)
    session_timeout_ms = int(request.session_timeout.total_seconds() * 1000)
    rebalance_timeout = getattr(request, "rebalance_timeout", None)
    rebalance_timeout_ms = int(rebalance_timeout.total_seconds() * 1000) if rebalance_timeout is not None else session_timeout_ms
    if ctx.api_version == 0:
        rebalance_timeout_ms = session_timeout_ms
    result = await ctx.services.groups.join_group(
        request.group_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        ctx.client_id or "",
        ctx.peer.rsplit(":", 1)[0],
        session_timeout_ms,
        rebalance_timeout_ms,
        request.protocol_type,
        [(protocol.name, protocol.metadata) for protocol in request.protocols],
        require_known_member_id=ctx.api_version >= 4,
        supports_skip_assignment=ctx.api_version >= 9,
    )
    member_class = sibling(response, "JoinGroupResponseMember")
    return build(
        response,
        throttle_time=timedelta(0),
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name if ctx.api_version >= 7 else (result.protocol_name or ""),
        leader=result.leader_id,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=tuple(
            build(member_class, member_id=member_id, group_instance_id=instance_id, metadata=metadata)
            for member_id, instance_id, metadata in result.members
        ),
    )
