"""DeleteRecords (key 21), v0-v2: move a partition's log start offset forward.

Offset -1 means the high watermark. An offset above the high watermark is OFFSET_OUT_OF_RANGE;
one below the current log start changes nothing. Whole segments below the new start are deleted;
fetches below it get OFFSET_OUT_OF_RANGE, so consumers follow `auto.offset.reset`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 21
MIN_VERSION = 0
MAX_VERSION = 2

HIGH_WATERMARK = -1
log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    topic_class = sibling(response, "DeleteRecordsTopicResult")
    partition_class = sibling(response, "DeleteRecordsPartitionResult")
    replicas = ctx.services.replicas
    topics = []
    for topic in request.topics:
        results = []
        deletable = ctx.allowed(Operation.DELETE, ResourceType.TOPIC, topic.name)
        for entry in topic.partitions:
            tp = TopicPartition(topic.name, entry.partition_index)
            if not deletable:
                results.append(build(partition_class, partition_index=entry.partition_index, low_watermark=-1,
                                     error_code=ErrorCode.topic_authorization_failed))
                continue
            try:
                low_watermark = replicas.delete_records(tp, entry.offset)
                error = ErrorCode.none
            except KafkaError as failure:
                low_watermark, error = -1, failure.code
            except Exception:
                log.exception("unexpected error deleting records of %s", tp)
                low_watermark, error = -1, ErrorCode.unknown_server_error
            results.append(build(partition_class, partition_index=entry.partition_index, low_watermark=low_watermark, error_code=error))
        topics.append(build(topic_class, name=topic.name, partitions=tuple(results)))
    # The new log start offsets must survive a crash: checkpoint them before answering.
    await replicas.checkpoint_offsets()
    return build(response, throttle_time=timedelta(0), topics=tuple(topics))
