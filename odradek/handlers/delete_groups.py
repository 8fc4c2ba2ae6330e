"""DeleteGroups (key 42), v0-v2: an empty group and its offsets go; a group with members is NON_EMPTY_GROUP."""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.protocol.errors import ErrorCode
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling

API_KEY = 42
MIN_VERSION = 0
MAX_VERSION = 2


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "DeletableGroupResult")
    allowed = [g for g in request.groups_names if ctx.allowed(Operation.DELETE, ResourceType.GROUP, g)]
    deleted = dict(zip(allowed, await ctx.services.groups.delete_groups(allowed))) if allowed else {}
    errors = [deleted.get(g, ErrorCode.group_authorization_failed) for g in request.groups_names]
    results = tuple(
        build(result_class, group_id=group_id, error_code=error) for group_id, error in zip(request.groups_names, errors)
    )
    return build(response, throttle_time=timedelta(0), results=results)
