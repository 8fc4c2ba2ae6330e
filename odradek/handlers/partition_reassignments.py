"""AlterPartitionReassignments (key 45, v0-v1) and ListPartitionReassignments (key 46, v0).

What Kafka's `kafka-reassign-partitions --execute/--verify/--cancel` sends. Both go to the
controller (NOT_CONTROLLER on another broker of a cluster). A single node has nothing to reassign
to: a target of just itself is accepted as already done, any other is INVALID_REPLICA_ASSIGNMENT,
and nothing is ever in progress.
Alter records each partition's target replicas (None cancels, back to the replicas before) and
returns at once; the controller then adds the new replicas, waits until they are in sync, moves
leadership into the target and drops the rest. v1's allow_replication_factor_change=false refuses
a target of another size (INVALID_REPLICATION_FACTOR). List reports every ongoing reassignment
(or those asked for): the current replicas and those being added and removed.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 45
MIN_VERSION = 0
MAX_VERSION = 1


def _controller(ctx: RequestContext):
    membership = ctx.services.membership
    return membership.controller if membership is not None else None


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    topic_class = sibling(response, "ReassignableTopicResponse")
    partition_class = sibling(response, "ReassignablePartitionResponse")
    if not ctx.allowed(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        return build(response, throttle_time=timedelta(0), allow_replication_factor_change=True,
                     error_code=ErrorCode.cluster_authorization_failed, error_message=None, responses=())
    controller = _controller(ctx)
    if controller is None and ctx.services.membership is not None:
        return build(response, throttle_time=timedelta(0), allow_replication_factor_change=True,
                     error_code=ErrorCode.not_controller, error_message="this broker is not the controller", responses=())
    allow_resize = getattr(request, "allow_replication_factor_change", True)
    changes: dict[TopicPartition, tuple[int, ...] | None] = {}
    refused: dict[TopicPartition, tuple[ErrorCode, str]] = {}
    for topic in request.topics:
        for entry in topic.partitions:
            tp = TopicPartition(topic.name, entry.partition_index)
            target = None if entry.replicas is None else tuple(int(b) for b in entry.replicas)
            registration = ctx.image.partition(tp)
            if target is not None and not allow_resize and registration is not None and len(target) != len(registration.replicas):
                refused[tp] = (ErrorCode.invalid_replication_factor,
                               f"the target has {len(target)} replicas, {tp} has {len(registration.replicas)}")
                continue
            changes[tp] = target
    if controller is None:
        results = {tp: _single_node_answer(ctx, tp, target) for tp, target in changes.items()}
    else:
        try:
            results = await ctx.services.controller.run(controller.alter_reassignments, changes) if changes else {}
        except KafkaError as error:
            return build(response, throttle_time=timedelta(0), allow_replication_factor_change=allow_resize,
                         error_code=error.code, error_message=error.message, responses=())
    results.update(refused)
    by_topic: dict[str, list] = {}
    for tp, (error, message) in results.items():
        by_topic.setdefault(tp.topic, []).append(
            build(partition_class, partition_index=tp.partition, error_code=error, error_message=message)
        )
    return build(
        response, throttle_time=timedelta(0), allow_replication_factor_change=allow_resize, error_code=ErrorCode.none,
        error_message=None,
        responses=tuple(build(topic_class, name=name, partitions=tuple(parts)) for name, parts in by_topic.items()),
    )


def _single_node_answer(ctx: RequestContext, tp: TopicPartition, target) -> tuple[ErrorCode, str | None]:
    if ctx.image.partition(tp) is None:
        return ErrorCode.unknown_topic_or_partition, f"{tp} does not exist"
    if target is None:
        return ErrorCode.no_reassignment_in_progress, f"no reassignment of {tp} is in progress"
    if tuple(target) != (ctx.services.node_id,):
        return ErrorCode.invalid_replica_assignment, f"replicas {list(target)}: the only broker is {ctx.services.node_id}"
    return ErrorCode.none, None
