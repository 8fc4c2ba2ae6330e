"""DescribeTransactions (key 65), v0: the state of transactional ids this broker coordinates
(`kafka-transactions describe`). Another broker's id answers NOT_COORDINATOR, an unknown one
TRANSACTIONAL_ID_NOT_FOUND."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from odradek.coordinator.transaction_coordinator import TxnError
from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 65
MIN_VERSION = 0
MAX_VERSION = 0

# kio writes a datetime as epoch milliseconds: this one is -1, Kafka's "no transaction started".
NO_START_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc) - timedelta(milliseconds=1)


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    state_class = sibling(response, "TransactionState")
    topic_class = sibling(response, "TopicData")
    states = []
    for transactional_id in request.transactional_ids:
        try:
            if not ctx.allowed(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, transactional_id):
                raise TxnError(ErrorCode.transactional_id_authorization_failed)
            meta = ctx.services.transactions.describe(transactional_id)
        except TxnError as error:
            states.append(build(
                state_class, error_code=error.code, transactional_id=transactional_id, transaction_state="",
                transaction_timeout=timedelta(0), transaction_start_time=NO_START_TIME, producer_id=-1, producer_epoch=-1,
                topics=(),
            ))
            continue
        by_topic: dict[str, list[int]] = {}
        for tp in sorted(meta.partitions):
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        states.append(build(
            state_class,
            error_code=ErrorCode.none,
            transactional_id=transactional_id,
            transaction_state=meta.state.label,
            transaction_timeout=timedelta(milliseconds=meta.timeout_ms),
            transaction_start_time=(datetime.fromtimestamp(meta.start_ms / 1000, tz=timezone.utc)
                                    if meta.start_ms >= 0 else NO_START_TIME),
            producer_id=meta.producer_id,
            producer_epoch=meta.producer_epoch,
            topics=tuple(build(topic_class, topic=topic, partitions=tuple(parts)) for topic, parts in by_topic.items()),
        ))
    return build(response, throttle_time=timedelta(0), transaction_states=tuple(states))
