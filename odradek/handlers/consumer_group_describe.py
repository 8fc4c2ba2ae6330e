"""ConsumerGroupDescribe (key 69), v0-v1: consumer-protocol groups, their epochs, members and assignments."""

from __future__ import annotations

from datetime import timedelta

from odradek.protocol.schemas import AUTHORIZED_OPERATIONS_OMITTED
from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 69
MIN_VERSION = 0
MAX_VERSION = 1

MEMBER_TYPE_CONSUMER = 1


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    group_class = sibling(response, "DescribedGroup")
    member_class = sibling(response, "Member")
    assignment_class = sibling(response, "Assignment")
    partitions_class = sibling(response, "TopicPartitions")
    image = ctx.image

    def assignment(by_topic) -> object:
        entries = []
        for topic, partitions in sorted(by_topic.items()):
            record = image.topic(topic)
            if record is not None:
                entries.append(
                    build(partitions_class, topic_id=record.topic_id, topic_name=topic, partitions=tuple(sorted(partitions)))
                )
        return build(assignment_class, topic_partitions=tuple(entries))

    described = []
    for group_id in request.group_ids:
        not_here = ctx.services.groups.coordinator_error(group_id)
        if not ctx.allowed(Operation.DESCRIBE, ResourceType.GROUP, group_id):
            described.append(build(
                group_class, error_code=ErrorCode.group_authorization_failed, error_message=None, group_id=group_id,
                group_state="", group_epoch=-1, assignment_epoch=-1, assignor_name="", members=(),
                authorized_operations=AUTHORIZED_OPERATIONS_OMITTED))
            continue
        group = ctx.services.groups.describe_consumer_group(group_id) if not_here is None else None
        if group is None:
            described.append(
                build(
                    group_class, error_code=not_here or ErrorCode.group_id_not_found,
                    error_message=f"group {group_id} is not a consumer group" if not_here is None else "not the coordinator of this group",
                    group_id=group_id, group_state="Dead", group_epoch=-1, assignment_epoch=-1, assignor_name="",
                    members=(), authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
                )
            )
            continue
        members = tuple(
            build(
                member_class,
                member_id=m.member_id,
                instance_id=m.instance_id,
                rack_id=m.rack_id,
                member_epoch=m.member_epoch,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=tuple(m.subscribed_topics),
                subscribed_topic_regex=m.subscribed_regex,
                assignment=assignment(m.assigned),
                target_assignment=assignment(group.target.get(m.member_id, {})),
                member_type=MEMBER_TYPE_CONSUMER,
            )
            for m in group.members.values()
        )
        described.append(
            build(
                group_class, error_code=ErrorCode.none, error_message=None, group_id=group_id, group_state=group.state,
                group_epoch=group.group_epoch, assignment_epoch=group.assignment_epoch, assignor_name=group.assignor_name,
                members=members, authorized_operations=ctx.authorized_operations(ResourceType.GROUP, group_id)
                if request.include_authorized_operations else AUTHORIZED_OPERATIONS_OMITTED,
            )
        )
    return build(response, throttle_time=timedelta(0), groups=tuple(described))
