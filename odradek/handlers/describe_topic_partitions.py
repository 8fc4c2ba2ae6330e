"""DescribeTopicPartitions (key 75), v0: topics and partitions, paged (KIP-966), used by Kafka 4's tools.

Topics come sorted by name; `response_partition_limit` bounds the partitions in one answer and
`next_cursor` says where to go on. An empty topic list means every topic. Leaders, replicas and
ISRs come from the metadata image; the eligible-leader-replica lists are empty (no ELR: that is
KRaft's, not ZooKeeper mode's).
"""

from __future__ import annotations

from datetime import timedelta

from odradek.protocol.schemas import AUTHORIZED_OPERATIONS_OMITTED, ZERO_UUID
from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 75
MIN_VERSION = 0
MAX_VERSION = 0



async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    topic_class = sibling(response, "DescribeTopicPartitionsResponseTopic")
    partition_class = sibling(response, "DescribeTopicPartitionsResponsePartition")
    cursor_class = sibling(response, "Cursor")
    controller = ctx.services.controller
    image = ctx.image
    live = image.live_broker_ids()
    names = sorted({t.name for t in request.topics}) if request.topics else [
        name for name in sorted(image.topics) if ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, name)]
    limit = max(request.response_partition_limit, 1)
    start_topic, start_partition = (request.cursor.topic_name, request.cursor.partition_index) if request.cursor else (None, 0)
    if start_topic is not None:
        names = [name for name in names if name >= start_topic]

    topics, budget, next_cursor = [], limit, None
    for name in names:
        if request.topics and not ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, name):  # (all: filtered above)
            topics.append(build(topic_class, error_code=ErrorCode.topic_authorization_failed, name=name, topic_id=ZERO_UUID,
                                is_internal=False, partitions=(), topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED))
            continue
        record = image.topic(name)
        if record is None:
            code = ErrorCode.unknown_topic_or_partition
            try:
                controller.validate_topic_name(name)
            except KafkaError as error:
                code = error.code
            topics.append(
                build(topic_class, error_code=code, name=name, topic_id=ZERO_UUID, is_internal=False,
                      partitions=(), topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED)
            )
            continue
        first = start_partition if name == start_topic else 0
        if budget == 0:
            next_cursor = build(cursor_class, topic_name=name, partition_index=first)
            break
        last = min(record.partition_count, first + budget)
        partitions = tuple(
            build(
                partition_class, error_code=ErrorCode.none, partition_index=index, leader_id=p.leader,
                leader_epoch=p.leader_epoch, replica_nodes=p.replicas, isr_nodes=p.isr,
                eligible_leader_replicas=(), last_known_elr=(), offline_replicas=p.offline_replicas(live),
            )
            for index, p in enumerate(record.partitions[first:last], start=first)
        )
        budget -= last - first
        topics.append(
            build(topic_class, error_code=ErrorCode.none, name=name, topic_id=record.topic_id,
                  is_internal=record.is_internal, partitions=partitions,
                  topic_authorized_operations=ctx.authorized_operations(ResourceType.TOPIC, name))
        )
        if last < record.partition_count:
            next_cursor = build(cursor_class, topic_name=name, partition_index=last)
            break
    return build(response, throttle_time=timedelta(0), topics=tuple(topics), next_cursor=next_cursor)
