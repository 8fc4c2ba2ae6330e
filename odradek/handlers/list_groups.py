"""ListGroups (key 16), v0-v5: every group, filtered by state (v4+) and type (v5+: "classic")."""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 16
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    listed_class = sibling(response, "ListedGroup")
    types = {t.lower() for t in getattr(request, "types_filter", ())}
    groups = ctx.services.groups.list_groups(getattr(request, "states_filter", None))
    if types and "classic" not in types:
        groups = []
    listed = tuple(
        build(
            listed_class,
            group_id=group.group_id,
            protocol_type=group.protocol_type or "",
            group_state=group.state.value,
            group_type="classic",
        )
        for group in groups
    )
    return build(response, throttle_time=timedelta(0), error_code=ErrorCode.none, groups=listed)
