"""Produce (key 0), advertised v0-v12, served v3-v12.

v0-v2 are advertised so that older librdkafka keeps message format v1 features and compression
(KAFKA-18659); an actual v0-v2 request is answered with UNSUPPORTED_VERSION per partition.
Per partition: the records are validated batch by batch (size, magic, CRC32C, count) without
decoding a record, idempotent sequences are checked, offsets are patched into the batch headers
and the batches are written as they arrived. acks=0 gets no response at all. Every requested
partition gets an answer. An unknown topic is UNKNOWN_TOPIC_OR_PARTITION: as in Kafka, topics
are auto-created by Metadata (which every producer asks first), never by Produce.
"""

from __future__ import annotations

import asyncio
import logging

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import CloseConnection, RequestContext
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.produce_response import ProduceAnswer, ProducedPartition
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 0
MIN_VERSION = 0
MAX_VERSION = 12
REJECTED_BELOW = 3
TRANSACTION_V2_VERSION = 12  # KIP-890 part 2: the broker adds the partition to the transaction

log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    services = ctx.services

    transactional_id = getattr(request, "transactional_id", None)
    # Kafka's checks: WRITE on the transactional id (for the whole request), then on each topic.
    if transactional_id is not None and not ctx.allowed(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        denied = {topic.name: ErrorCode.transactional_id_authorization_failed for topic in request.topic_data}
    else:
        denied = {topic.name: ErrorCode.topic_authorization_failed for topic in request.topic_data
                  if not ctx.allowed(Operation.WRITE, ResourceType.TOPIC, topic.name)}
    unverified = await _verify_transactions(ctx, request) if not denied else {}
    answered: list[tuple[str, list]] = []
    appended: list[tuple[list, int, TopicPartition, int]] = []  # (results, position, partition, next offset)
    for topic in request.topic_data:
        results = []
        for data in topic.partition_data:
            tp = TopicPartition(topic.name, data.index)
            if request.acks not in (-1, 0, 1):
                error = KafkaError(ErrorCode.invalid_required_acks, f"acks must be -1, 0 or 1, got {request.acks}")
                results.append(_partition_error(data.index, error))
                continue
            if topic.name in denied:
                error = KafkaError(denied[topic.name], f"not authorized to write to {topic.name}")
                results.append(_partition_error(data.index, error))
                continue
            if tp in unverified:
                results.append(_partition_error(data.index, unverified[tp]))
                continue
            try:
                result = services.replicas.append_records(tp, data.records, required_acks=request.acks)
            except KafkaError as error:
                results.append(_partition_error(data.index, error))
                continue
            except Exception:
                log.exception("unexpected error appending to %s", tp)
                error = KafkaError(ErrorCode.unknown_server_error, "unexpected server error; see the broker log")
                results.append(_partition_error(data.index, error))
                continue
            appended.append((results, len(results), tp, result.last_offset + 1))
            results.append(ProducedPartition(data.index, ErrorCode.none, result.base_offset, result.log_append_time_ms,
                                             result.log_start_offset, None))
        answered.append((topic.name, results))

    for results, position, tp, _ in appended:
        try:
            await services.replicas.flush_if_due(tp)
        except KafkaError as error:
            results[position] = _partition_error(tp.partition, error)
    if request.acks == -1 and appended:
        await _wait_for_in_sync_replicas(services, appended, request.timeout.total_seconds())
    if request.acks == 0:
        failed = [ErrorCode(r.error_code).name for _, results in answered for r in results if r.error_code != ErrorCode.none]
        if failed:
            raise CloseConnection(f"acks=0 produce failed ({', '.join(sorted(set(failed)))})")
        return None
    return ProduceAnswer(0, answered)


# A failed verification, as the producer must see it on Produce.
_VERIFICATION_ERRORS = {
    ErrorCode.producer_fenced: ErrorCode.invalid_producer_epoch,
    ErrorCode.coordinator_not_available: ErrorCode.not_enough_replicas,
    ErrorCode.coordinator_load_in_progress: ErrorCode.not_enough_replicas,
    ErrorCode.not_coordinator: ErrorCode.not_enough_replicas,
}


async def _verify_transactions(ctx: RequestContext, request) -> dict[TopicPartition, KafkaError]:
    """KIP-890 part 1: a producer's first transactional batch on a partition is written only once
    its transaction coordinator confirms the partition is in its open transaction; a late batch
    of an aborted (or timed-out) transaction is refused instead of opening a transaction that no
    marker would ever end. Returns the refused partitions."""
    transactional_id = getattr(request, "transactional_id", None)
    services = ctx.services
    if not transactional_id or not services.config["transaction.partition.verification.enable"]:
        return {}
    first_writes: dict[tuple[int, int], list[TopicPartition]] = {}
    for topic in request.topic_data:
        for data in topic.partition_data:
            tp = TopicPartition(topic.name, data.index)
            producer = services.replicas.first_transactional_write(tp, data.records)
            if producer is not None:
                first_writes.setdefault(producer, []).append(tp)
    refused: dict[TopicPartition, KafkaError] = {}
    add = ctx.api_version >= TRANSACTION_V2_VERSION  # the producer no longer sends AddPartitionsToTxn
    for (producer_id, epoch), partitions in first_writes.items():
        errors = await services.transactions.verify_for_produce(transactional_id, producer_id, epoch, partitions, add=add)
        for tp, code in errors.items():
            if code != ErrorCode.none:
                code = _VERIFICATION_ERRORS.get(code, code)
                refused[tp] = KafkaError(code, f"{tp} is not part of an open transaction of {transactional_id!r} "
                                               f"(producer {producer_id}, epoch {epoch})")
    return refused


async def _wait_for_in_sync_replicas(services, appended, timeout_s: float) -> None:
    """acks=all: each appended partition is answered once its high watermark passes the batch
    (at once on a single node, where the ISR is this broker: no task is started then)."""
    replicas = services.replicas
    waiting = []
    for results, position, tp, next_offset in appended:
        if results[position].error_code != ErrorCode.none:
            continue
        try:
            if not replicas.is_replicated(tp, next_offset):
                waiting.append((results, position, tp, next_offset))
        except KafkaError as error:
            results[position] = _partition_error(tp.partition, error)
    if not waiting:
        return

    async def one(results, position, tp, next_offset) -> None:
        try:
            await replicas.wait_for_high_watermark(tp, next_offset, timeout_s)
        except KafkaError as error:
            results[position] = _partition_error(tp.partition, error)

    await asyncio.gather(*(one(*entry) for entry in waiting))


def _partition_error(index: int, error: KafkaError) -> ProducedPartition:
    return ProducedPartition(index, error.code, -1, -1, -1, error.message or None)
