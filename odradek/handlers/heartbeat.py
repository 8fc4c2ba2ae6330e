"""Heartbeat (key 12), v0-v4: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin."""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.protocol.errors import ErrorCode
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, error_response

API_KEY = 12
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx: RequestContext, request):
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        return error_response(ctx.response_class, ErrorCode.group_authorization_failed)
    error = ctx.services.groups.heartbeat(
        request.group_id, request.generation_id, request.member_id, getattr(request, "group_instance_id", None)
    )
    return build(ctx.response_class, throttle_time=timedelta(0), error_code=error)
