"""Metadata (key 3), v0-v12.

Behaviour: v0 with an empty list, or v1+ with topics=null, lists every topic; an empty list
(v1+) lists none. Unknown topics are created when `auto.create.topics.enable` and the request
allows it (always before v4); the answer then already carries the new topic (creation is
synchronous, so no LEADER_NOT_AVAILABLE round trip). Topics may be asked for by id (v10+).
This broker is every partition's leader and only replica.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.protocol.schemas import AUTHORIZED_OPERATIONS_OMITTED, ZERO_UUID
from odradek.protocol.topic_partition import INTERNAL_TOPICS
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 3
MIN_VERSION = 0
MAX_VERSION = 12



async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    services = ctx.services
    controller = services.controller
    allow_auto_create = getattr(request, "allow_auto_topic_creation", True)

    if request.topics is None or (ctx.api_version == 0 and not request.topics):
        topics = [_topic(response, controller.topic(name), ctx) for name in sorted(controller.topic_names())]
    else:
        topics = [_requested_topic(response, entry, allow_auto_create, ctx) for entry in request.topics]

    broker = build(
        sibling(response, "MetadataResponseBroker"),
        node_id=services.node_id,
        host=services.advertised_host,
        port=services.advertised_port,
        rack=None,
    )
    return build(
        response,
        throttle_time=timedelta(0),
        brokers=(broker,),
        cluster_id=services.cluster_id,
        controller_id=services.node_id,
        topics=tuple(topics),
        cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
        error_code=ErrorCode.none,
    )


def _requested_topic(response, entry, allow_auto_create: bool, ctx: RequestContext):
    controller = ctx.services.controller
    name = entry.name
    topic_id = getattr(entry, "topic_id", None)
    if name is None:
        record = controller.topic_by_id(topic_id) if topic_id else None
        if record is None:
            return _topic_error(response, None, topic_id or ZERO_UUID, ErrorCode.unknown_topic_id)
        return _topic(response, record, ctx)
    record = controller.topic(name)
    if record is None:
        try:
            controller.validate_topic_name(name)
            if not allow_auto_create:
                raise KafkaError(ErrorCode.unknown_topic_or_partition)
            record = controller.auto_create_topic(name)
        except KafkaError as error:
            return _topic_error(response, name, ZERO_UUID, error.code)
    return _topic(response, record, ctx)


def _topic(response, record, ctx: RequestContext):
    node_id = ctx.services.node_id
    partition_class = sibling(response, "MetadataResponsePartition")
    partitions = tuple(
        build(
            partition_class,
            error_code=ErrorCode.none,
            partition_index=index,
            leader_id=node_id,
            leader_epoch=ctx.services.replicas.leader_epoch(record.name, index),
            replica_nodes=(node_id,),
            isr_nodes=(node_id,),
            offline_replicas=(),
        )
        for index in range(record.partitions)
    )
    return build(
        sibling(response, "MetadataResponseTopic"),
        error_code=ErrorCode.none,
        name=record.name,
        topic_id=record.topic_id,
        is_internal=record.name in INTERNAL_TOPICS,
        partitions=partitions,
        topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )


def _topic_error(response, name, topic_id, code: ErrorCode):
    return build(
        sibling(response, "MetadataResponseTopic"),
        error_code=code,
        name=name if name is not None else "",
        topic_id=topic_id,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )
