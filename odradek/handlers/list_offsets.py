"""ListOffsets (key 2), v1-v10.

Timestamps: -1 latest (the high watermark; the last stable offset for read_committed),
-2 earliest (log start), -3 the record with the largest timestamp (KIP-734), -4 earliest local
(= earliest: no tiered storage), any other value: the first record whose timestamp is at least
that, below the latest offset the isolation level allows (offset -1 when there is none).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 2
MIN_VERSION = 1
MAX_VERSION = 10

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4

log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    partition_class = sibling(response, "ListOffsetsPartitionResponse")
    topic_class = sibling(response, "ListOffsetsTopicResponse")
    replicas = ctx.services.replicas
    topics = []
    for topic in request.topics:
        partitions = []
        described = ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, topic.name)
        for entry in topic.partitions:
            tp = TopicPartition(topic.name, entry.partition_index)
            if not described:
                partitions.append(_error(partition_class, entry.partition_index, ErrorCode.topic_authorization_failed))
                continue
            try:
                state = replicas.leader_partition(tp, getattr(entry, "current_leader_epoch", -1))
                offset, timestamp = _lookup(state, entry.timestamp, getattr(request, "isolation_level", 0) == 1)
                partitions.append(
                    build(
                        partition_class,
                        partition_index=entry.partition_index,
                        error_code=ErrorCode.none,
                        timestamp=timestamp,
                        offset=offset,
                        leader_epoch=state.leader_epoch,
                    )
                )
            except KafkaError as error:
                partitions.append(_error(partition_class, entry.partition_index, error.code))
            except Exception:
                log.exception("unexpected error listing offsets of %s", tp)
                partitions.append(_error(partition_class, entry.partition_index, ErrorCode.unknown_server_error))
        topics.append(build(topic_class, name=topic.name, partitions=tuple(partitions)))
    return build(response, throttle_time=timedelta(0), topics=tuple(topics))


def _lookup(state, timestamp: int, read_committed: bool) -> tuple[int, int]:
    latest = state.last_stable_offset if read_committed else state.high_watermark
    if timestamp == LATEST:
        return latest, -1
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return state.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        found = state.log.max_timestamp_offset()
    elif timestamp < 0:
        raise KafkaError(ErrorCode.invalid_request, f"unknown special timestamp {timestamp}")
    else:
        found = state.log.offset_for_timestamp(timestamp)
    if found is None or found[0] >= latest:
        return -1, -1
    return found


def _error(partition_class, index: int, code: ErrorCode):
    return build(partition_class, partition_index=index, error_code=code, timestamp=-1, offset=-1, leader_epoch=-1)
