"""InitProducerId (key 22), v0-v5: producer ids for idempotent producers.

Without a transactional id every call gets a fresh producer id at epoch 0, as Kafka does.
Deviation: transactions are not implemented yet. A transactional id is refused with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as FindCoordinator refuses the transaction coordinator
(see find_coordinator.refuse_transactions): the one answer every client treats as fatal at once.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.find_coordinator import refuse_transactions
from odradek.handlers.responses import build
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 22
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    if request.transactional_id is not None:
        code, _message = refuse_transactions(ctx, request.transactional_id)
        return build(response, throttle_time=timedelta(0), error_code=code, producer_id=-1, producer_epoch=-1)
    try:
        producer_id = await ctx.services.producer_ids.next_producer_id()
    except KafkaError as error:
        return build(response, throttle_time=timedelta(0), error_code=error.code, producer_id=-1, producer_epoch=-1)
    return build(
        response, throttle_time=timedelta(0), error_code=ErrorCode.none, producer_id=producer_id, producer_epoch=0
    )
