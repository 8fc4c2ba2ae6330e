"""ListGroups (key 16), v0-v5: every group, filtered by state (v4+) and type (v5+: "classic", "consumer")."""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 16
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    listed_class = sibling(response, "ListedGroup")
    groups = ctx.services.groups.list_groups(getattr(request, "states_filter", None), getattr(request, "types_filter", None))
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        groups = [g for g in groups if ctx.allowed(Operation.DESCRIBE, ResourceType.GROUP, g[0])]
    listed = tuple(
        build(listed_class, group_id=group_id, protocol_type=protocol_type, group_state=state, group_type=group_type)
        for group_id, protocol_type, state, group_type in groups
    )
    return build(response, throttle_time=timedelta(0), error_code=ErrorCode.none, groups=listed)
