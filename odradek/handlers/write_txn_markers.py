"""WriteTxnMarkers (key 27), v1-v2: a transaction coordinator (or `kafka-transactions abort`)
ends a producer's transaction on partitions this broker leads.

Each partition gets the COMMIT or ABORT control batch, answered once the in-sync replicas have it
(as acks=all); a marker for `__consumer_offsets` also settles the producer's pending transactional
offset commits there. Errors per partition: NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
TRANSACTION_COORDINATOR_FENCED (a marker from a deposed coordinator), INVALID_PRODUCER_EPOCH.
"""

from __future__ import annotations

import asyncio
import logging

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 27
MIN_VERSION = 1
MAX_VERSION = 2

log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    services = ctx.services
    authorized = ctx.allowed(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)  # brokers and Kafka's tools
    timeout_s = services.config["offsets.commit.timeout.ms"] / 1000

    async def one(marker, tp: TopicPartition) -> ErrorCode:
        if not authorized:
            return ErrorCode.cluster_authorization_failed
        try:
            await services.replicas.write_txn_marker(
                tp, marker.producer_id, marker.producer_epoch, marker.transaction_result, marker.coordinator_epoch, timeout_s,
            )
        except KafkaError as error:
            return error.code
        except Exception:
            log.exception("unexpected error writing a transaction marker to %s", tp)
            return ErrorCode.unknown_server_error
        return ErrorCode.none

    partition_class = sibling(response, "WritableTxnMarkerPartitionResult")
    topic_class = sibling(response, "WritableTxnMarkerTopicResult")
    marker_class = sibling(response, "WritableTxnMarkerResult")
    results = []
    for marker in request.markers:
        wanted = [TopicPartition(topic.name, index) for topic in marker.topics for index in topic.partition_indexes]
        codes = await asyncio.gather(*(one(marker, tp) for tp in wanted))
        by_topic: dict[str, list] = {}
        for tp, code in zip(wanted, codes):
            by_topic.setdefault(tp.topic, []).append(build(partition_class, partition_index=tp.partition, error_code=code))
        topics = tuple(build(topic_class, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())
        results.append(build(marker_class, producer_id=marker.producer_id, topics=topics))
    return build(response, markers=tuple(results))
