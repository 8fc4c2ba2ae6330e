"""SyncGroup (key 14), v0-v5: the leader hands out assignments; every member receives its own.

A follower's request parks until the leader's arrives. v5 checks protocol type and name.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.protocol.errors import ErrorCode
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, error_response

API_KEY = 14
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        return error_response(ctx.response_class, ErrorCode.group_authorization_failed)
    result = await ctx.services.groups.sync_group(
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        getattr(request, "protocol_type", None),
        getattr(request, "protocol_name", None),
        {a.member_id: a.assignment for a in request.assignments},
    )
    return build(
        ctx.response_class,
        throttle_time=timedelta(0),
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )
