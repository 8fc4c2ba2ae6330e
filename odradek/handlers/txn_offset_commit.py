"""TxnOffsetCommit (key 28), v0-v5: a transactional producer commits a group's offsets inside its
transaction (send_offsets_to_transaction). They become the group's committed offsets when the
transaction commits, and vanish if it aborts; v3+ carries the consumer's generation and member
id, checked as OffsetCommit checks them (a zombie consumer is fenced). v5 is transaction version
2: the producer sent no AddOffsetsToTxn, so the group's `__consumer_offsets` partition is added to
its transaction here first."""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.offset_commit import requested_offsets, topic_results
from odradek.handlers.responses import build
from odradek.handlers.transactions import fenced_for_version
from odradek.protocol.errors import ErrorCode
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 28
MIN_VERSION = 0
MAX_VERSION = 5
TRANSACTION_V2_VERSION = 5


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    wanted = requested_offsets(request)
    services = ctx.services
    if not ctx.allowed(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        errors = [ErrorCode.transactional_id_authorization_failed] * len(wanted)
        return build(response, throttle_time=timedelta(0), topics=topic_results(response, "TxnOffsetCommit", wanted, errors))
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        errors = [ErrorCode.group_authorization_failed] * len(wanted)
        return build(response, throttle_time=timedelta(0), topics=topic_results(response, "TxnOffsetCommit", wanted, errors))
    unreadable = {topic for topic, *_ in wanted if not ctx.allowed(Operation.READ, ResourceType.TOPIC, topic)}
    if unreadable:
        errors = [ErrorCode.topic_authorization_failed if topic in unreadable else ErrorCode.operation_not_attempted
                  for topic, *_ in wanted]
        return build(response, throttle_time=timedelta(0), topics=topic_results(response, "TxnOffsetCommit", wanted, errors))
    added = ErrorCode.none
    if ctx.api_version >= TRANSACTION_V2_VERSION:
        offsets_partition = TopicPartition(services.groups.store.topic, services.groups.store.partition_for(request.group_id))
        added = (await services.transactions.verify_for_produce(
            request.transactional_id, request.producer_id, request.producer_epoch, [offsets_partition], add=True,
        ))[offsets_partition]
    if added != ErrorCode.none:
        errors = [added for _ in wanted]
    else:
        errors = await services.groups.commit_transactional_offsets(
            request.group_id,
            request.producer_id,
            request.producer_epoch,
            getattr(request, "generation_id", -1),
            getattr(request, "member_id", ""),
            getattr(request, "group_instance_id", None),
            wanted,
        )
    errors = [fenced_for_version(error, ctx.api_version, 2) for error in errors]
    return build(response, throttle_time=timedelta(0), topics=topic_results(response, "TxnOffsetCommit", wanted, errors))
