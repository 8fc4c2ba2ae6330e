"""ElectLeaders (key 43), v0-v2: on one node the leader is always the preferred replica.

Every named partition answers ELECTION_NOT_NEEDED (UNKNOWN_TOPIC_OR_PARTITION if it does not
exist); `topic_partitions=null` (all partitions) answers with an empty list, as Kafka does when
no election was needed anywhere.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 43
MIN_VERSION = 0
MAX_VERSION = 2


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "ReplicaElectionResult")
    partition_class = sibling(response, "PartitionResult")
    replicas = ctx.services.replicas
    results = []
    for entry in request.topic_partitions or ():
        partitions = tuple(
            build(
                partition_class,
                partition_id=index,
                error_code=ErrorCode.election_not_needed
                if replicas.partition(TopicPartition(entry.topic, index)) is not None
                else ErrorCode.unknown_topic_or_partition,
                error_message=None,
            )
            for index in entry.partitions
        )
        results.append(build(result_class, topic=entry.topic, partition_result=partitions))
    return build(response, throttle_time=timedelta(0), error_code=ErrorCode.none, replica_election_results=tuple(results))
