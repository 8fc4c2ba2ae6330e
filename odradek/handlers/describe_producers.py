"""DescribeProducers (key 61), v0: the idempotent producers a partition has seen, with their last
sequence and timestamp. No transactions yet, so no open transaction start offsets."""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 61
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    topic_class = sibling(response, "TopicResponse")
    partition_class = sibling(response, "PartitionResponse")
    state_class = sibling(response, "ProducerState")
    replicas = ctx.services.replicas
    topics = []
    for topic in request.topics:
        partitions = []
        readable = ctx.allowed(Operation.READ, ResourceType.TOPIC, topic.name)
        for index in topic.partition_indexes:
            if not readable:
                partitions.append(build(partition_class, partition_index=index, error_code=ErrorCode.topic_authorization_failed,
                                        error_message=None, active_producers=()))
                continue
            try:
                partition = replicas.leader_partition(TopicPartition(topic.name, index))
                producers = tuple(
                    build(
                        state_class, producer_id=producer_id, producer_epoch=entry.epoch, last_sequence=entry.last_sequence,
                        last_timestamp=entry.last_timestamp_ms, coordinator_epoch=entry.coordinator_epoch,
                        current_txn_start_offset=entry.current_txn_first_offset,
                    )
                    for producer_id, entry in sorted(partition.producers.active().items())
                )
                partitions.append(
                    build(partition_class, partition_index=index, error_code=ErrorCode.none, error_message=None, active_producers=producers)
                )
            except KafkaError as error:
                partitions.append(
                    build(partition_class, partition_index=index, error_code=error.code, error_message=error.message or None, active_producers=())
                )
        topics.append(build(topic_class, name=topic.name, partitions=tuple(partitions)))
    return build(response, throttle_time=timedelta(0), topics=tuple(topics))
