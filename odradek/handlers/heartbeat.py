"""Heartbeat (key 12), v0-v4: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin."""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build

API_KEY = 12
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx: RequestContext, request):
    error = ctx.services.groups.heartbeat(
        request.group_id, request.generation_id, request.member_id, getattr(request, "group_instance_id", None)
    )
    return build(ctx.response_class, throttle_time=timedelta(0), error_code=error)
