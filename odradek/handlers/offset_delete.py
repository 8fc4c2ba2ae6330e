"""OffsetDelete (key 47), v0: drop committed offsets of partitions the group is not consuming.

A partition of a topic the group's members subscribe to answers GROUP_SUBSCRIBED_TO_TOPIC.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 47
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    wanted = [(topic.name, p.partition_index) for topic in request.topics for p in topic.partitions]
    if not ctx.allowed(Operation.DELETE, ResourceType.GROUP, request.group_id):
        return build(response, error_code=ErrorCode.group_authorization_failed, throttle_time=timedelta(0), topics=())
    readable = {topic: ctx.allowed(Operation.READ, ResourceType.TOPIC, topic) for topic, _ in wanted}
    top, deleted = await ctx.services.groups.delete_offsets(request.group_id, [w for w in wanted if readable[w[0]]])
    deleted = iter(deleted)
    errors = [next(deleted, ErrorCode.none) if readable[topic] else ErrorCode.topic_authorization_failed
              for topic, _ in wanted] if top == ErrorCode.none else []
    if top != ErrorCode.none:
        return build(response, error_code=top, throttle_time=timedelta(0), topics=())
    partition_class = sibling(response, "OffsetDeleteResponsePartition")
    topic_class = sibling(response, "OffsetDeleteResponseTopic")
    by_topic: dict[str, list] = {}
    for (topic, partition), error in zip(wanted, errors):
        by_topic.setdefault(topic, []).append(build(partition_class, partition_index=partition, error_code=error))
    topics = tuple(build(topic_class, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())
    return build(response, error_code=ErrorCode.none, throttle_time=timedelta(0), topics=topics)
