"""ListPartitionReassignments (key 46), v0: the reassignments in progress (see
partition_reassignments.py). Served by the controller (NOT_CONTROLLER on another broker of a
cluster); a single node has none."""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 46
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    topic_class = sibling(response, "OngoingTopicReassignment")
    partition_class = sibling(response, "OngoingPartitionReassignment")
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return build(response, throttle_time=timedelta(0), error_code=ErrorCode.cluster_authorization_failed,
                     error_message=None, topics=())
    membership = ctx.services.membership
    controller = membership.controller if membership is not None else None
    if controller is None and membership is not None:
        return build(response, throttle_time=timedelta(0), error_code=ErrorCode.not_controller,
                     error_message="this broker is not the controller", topics=())
    try:
        ongoing = await ctx.services.controller.run(controller.list_reassignments) if controller is not None else {}
    except KafkaError as error:
        return build(response, throttle_time=timedelta(0), error_code=error.code, error_message=error.message, topics=())
    if request.topics is not None:
        wanted = {TopicPartition(t.name, p) for t in request.topics for p in t.partition_indexes}
        ongoing = {tp: value for tp, value in ongoing.items() if tp in wanted}
    by_topic: dict[str, list] = {}
    for tp, (replicas, adding, removing) in sorted(ongoing.items()):
        by_topic.setdefault(tp.topic, []).append(
            build(partition_class, partition_index=tp.partition, replicas=replicas, adding_replicas=adding, removing_replicas=removing)
        )
    return build(response, throttle_time=timedelta(0), error_code=ErrorCode.none, error_message=None,
                 topics=tuple(build(topic_class, name=name, partitions=tuple(parts)) for name, parts in by_topic.items()))
