"""AddPartitionsToTxn (key 24), v0-v5: the partitions a transaction writes to.

v0-v3 come from producers: one transaction, every partition answered with the same error (or
UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist and OPERATION_NOT_ATTEMPTED for the
others). v4+ come from brokers and batch several transactions; with `verify_only` (KIP-890) the
coordinator only says which partitions the open transaction holds.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, error_response, sibling
from odradek.handlers.transactions import fenced_for_version
from odradek.protocol.errors import ErrorCode
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 24
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    coordinator = ctx.services.transactions
    if ctx.api_version >= 4 and not ctx.allowed(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME):
        return error_response(response, ErrorCode.cluster_authorization_failed)  # v4+ is broker to broker
    if ctx.api_version < 4:
        partitions = _partitions(request.v3_and_below_topics)
        refused = _refused(ctx, request.v3_and_below_transactional_id, partitions)
        if refused:
            return build(response, throttle_time=timedelta(0),
                         results_by_topic_v3_and_below=_topic_results(response, refused, ctx.api_version))
        errors = await coordinator.add_partitions(
            request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch, partitions,
        )
        return build(response, throttle_time=timedelta(0),
                     results_by_topic_v3_and_below=_topic_results(response, errors, ctx.api_version))
    results = []
    for txn in request.transactions:
        partitions = _partitions(txn.topics)
        if txn.verify_only:
            errors = coordinator.verify_partitions(txn.transactional_id, txn.producer_id, txn.producer_epoch, partitions)
        else:
            errors = await coordinator.add_partitions(txn.transactional_id, txn.producer_id, txn.producer_epoch, partitions)
        results.append(build(sibling(response, "AddPartitionsToTxnResult"), transactional_id=txn.transactional_id,
                             topic_results=_topic_results(response, errors, ctx.api_version)))
    return build(response, throttle_time=timedelta(0), error_code=ErrorCode.none, results_by_transaction=tuple(results))


def _refused(ctx: RequestContext, transactional_id: str, partitions: list[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
    """Kafka's checks: WRITE on the transactional id, then on each topic; when any fails, the
    refused partitions get their error and the rest OPERATION_NOT_ATTEMPTED. Empty: all allowed."""
    if not ctx.allowed(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return {tp: ErrorCode.transactional_id_authorization_failed for tp in partitions}
    denied = {tp for tp in partitions if not ctx.allowed(Operation.WRITE, ResourceType.TOPIC, tp.topic)}
    if not denied:
        return {}
    return {tp: ErrorCode.topic_authorization_failed if tp in denied else ErrorCode.operation_not_attempted
            for tp in partitions}


def _partitions(topics) -> list[TopicPartition]:
    return [TopicPartition(topic.name, partition) for topic in topics for partition in topic.partitions]


def _topic_results(response, errors: dict[TopicPartition, ErrorCode], version: int) -> tuple:
    partition_class = sibling(response, "AddPartitionsToTxnPartitionResult")
    topic_class = sibling(response, "AddPartitionsToTxnTopicResult")
    by_topic: dict[str, list] = {}
    for tp, code in errors.items():
        by_topic.setdefault(tp.topic, []).append(
            build(partition_class, partition_index=tp.partition, partition_error_code=fenced_for_version(code, version, 2))
        )
    return tuple(build(topic_class, name=name, results_by_partition=tuple(parts)) for name, parts in by_topic.items())
