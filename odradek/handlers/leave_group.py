"""LeaveGroup (key 13), v0-v5: one member (v0-v2) or a batch of members (v3+, by member or instance id)."""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, error_response, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 13
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        return error_response(ctx.response_class, ErrorCode.group_authorization_failed)
    response = ctx.response_class
    groups = ctx.services.groups
    if ctx.api_version < 3:
        (error,) = groups.leave_group(request.group_id, [(request.member_id, None)])
        return build(response, throttle_time=timedelta(0), error_code=error, members=())
    leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    errors = groups.leave_group(request.group_id, leaving)
    member_class = sibling(response, "MemberResponse")
    members = tuple(
        build(member_class, member_id=member_id, group_instance_id=instance_id, error_code=error)
        for (member_id, instance_id), error in zip(leaving, errors)
    )
    # Kafka answers UNKNOWN_MEMBER_ID at the top only when the group itself is unknown.
    top = groups.coordinator_error(request.group_id)
    if top is None:
        top = ErrorCode.unknown_member_id if request.group_id not in groups.groups and leaving else ErrorCode.none
    return build(response, throttle_time=timedelta(0), error_code=top, members=members)
