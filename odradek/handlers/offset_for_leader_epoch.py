"""OffsetForLeaderEpoch (key 23), v2-v4: where a leader epoch ends in this leader's log.

Consumers ask it after a leader change (KIP-320) to find out whether their position survived a
truncation; followers may ask it too. Per partition, from the leader epoch cache: the largest
epoch at or below the one asked for, and the offset where it ends (the next epoch's first
offset, or the log end for the current epoch); UNDEFINED (-1, -1) for an epoch older than the
log. Only the leader answers (NOT_LEADER_OR_FOLLOWER otherwise); `current_leader_epoch` fences a
client with stale (FENCED_LEADER_EPOCH) or future (UNKNOWN_LEADER_EPOCH) metadata.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 23
MIN_VERSION = 2
MAX_VERSION = 4

log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    topic_class = sibling(response, "OffsetForLeaderTopicResult")
    result_class = sibling(response, "EpochEndOffset")
    replicas = ctx.services.replicas
    topics = []
    follower = getattr(request, "replica_id", -1) >= 0
    cluster_action = follower and ctx.allowed(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)
    for topic in request.topics:
        results = []
        allowed = cluster_action if follower else ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, topic.topic)
        for entry in topic.partitions:
            tp = TopicPartition(topic.topic, entry.partition)
            if not allowed:
                results.append(build(result_class, error_code=ErrorCode.topic_authorization_failed,
                                     partition=entry.partition, leader_epoch=-1, end_offset=-1))
                continue
            try:
                partition = replicas.leader_partition(tp, getattr(entry, "current_leader_epoch", -1))
                if entry.leader_epoch == partition.leader_epoch:
                    epoch, end_offset = partition.leader_epoch, partition.log_end_offset
                else:
                    epoch, end_offset = partition.log.leader_epochs.end_offset_for(entry.leader_epoch, partition.log_end_offset)
                error = ErrorCode.none
            except KafkaError as failure:
                epoch, end_offset, error = -1, -1, failure.code
            except Exception:
                log.exception("unexpected error answering OffsetForLeaderEpoch for %s", tp)
                epoch, end_offset, error = -1, -1, ErrorCode.unknown_server_error
            results.append(build(result_class, error_code=error, partition=entry.partition, leader_epoch=epoch, end_offset=end_offset))
        topics.append(build(topic_class, topic=topic.topic, partitions=tuple(results)))
    return build(response, throttle_time=timedelta(0), topics=tuple(topics))
