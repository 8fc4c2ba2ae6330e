"""InitProducerId (key 22), v0-v5: producer ids for idempotent producers.

Without a transactional id every call gets a fresh producer id at epoch 0, as Kafka does.
Deviation: transactions are not implemented yet, so a transactional id is answered with
UNSUPPORTED_VERSION, which clients report as "the broker does not support transactions".
"""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 22
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    if request.transactional_id is not None:
        return build(
            response,
            throttle_time=timedelta(0),
            error_code=ErrorCode.unsupported_version,
            producer_id=-1,
            producer_epoch=-1,
        )
    try:
        producer_id = await ctx.services.producer_ids.next_producer_id()
    except KafkaError as error:
        return build(response, throttle_time=timedelta(0), error_code=error.code, producer_id=-1, producer_epoch=-1)
    return build(
        response, throttle_time=timedelta(0), error_code=ErrorCode.none, producer_id=producer_id, producer_epoch=0
    )
