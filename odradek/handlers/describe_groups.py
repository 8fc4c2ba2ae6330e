"""DescribeGroups (key 15), v0-v6: state, protocol and members (with metadata and assignment when Stable).

An unknown group is "Dead" with no error before v6 and GROUP_ID_NOT_FOUND from v6, as in Kafka.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.protocol.schemas import AUTHORIZED_OPERATIONS_OMITTED
from odradek.security.acl import Operation, ResourceType
from odradek.coordinator.group_coordinator import GroupDescription
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 15
MIN_VERSION = 0
MAX_VERSION = 6



async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    group_class = sibling(response, "DescribedGroup")
    member_class = sibling(response, "DescribedGroupMember")
    described = []
    for group_id in request.groups:
        if ctx.allowed(Operation.DESCRIBE, ResourceType.GROUP, group_id):
            description = ctx.services.groups.describe_group(group_id)
        else:
            description = GroupDescription(group_id, "", "", "", [], ErrorCode.group_authorization_failed)
        error = description.error
        if error == ErrorCode.group_id_not_found and ctx.api_version < 6:
            error = ErrorCode.none
        if not group_id:
            error = ErrorCode.invalid_group_id
        described.append(
            build(
                group_class,
                error_code=error,
                error_message=None,
                group_id=group_id,
                group_state=description.state,
                protocol_type=description.protocol_type,
                protocol_data=description.protocol_name,
                members=tuple(
                    build(
                        member_class,
                        member_id=member.member_id,
                        group_instance_id=member.group_instance_id,
                        client_id=member.client_id,
                        client_host=member.client_host,
                        member_metadata=metadata,
                        member_assignment=assignment,
                    )
                    for member, metadata, assignment in description.members
                ),
                authorized_operations=ctx.authorized_operations(ResourceType.GROUP, group_id)
                if getattr(request, "include_authorized_operations", False) and error == ErrorCode.none
                else AUTHORIZED_OPERATIONS_OMITTED,
            )
        )
    return build(response, throttle_time=timedelta(0), groups=tuple(described))
