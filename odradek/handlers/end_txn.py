"""EndTxn (key 26), v0-v5: commit or abort the producer's transaction. Answered once the
coordinator has stored PrepareCommit/PrepareAbort; the markers are written after the answer."""

from __future__ import annotations

from datetime import timedelta

from odradek.coordinator.transaction_coordinator import TxnError
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.handlers.transactions import fenced_for_version
from odradek.protocol.errors import ErrorCode

API_KEY = 26
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    code = ErrorCode.none
    try:
        await ctx.services.transactions.end_transaction(
            request.transactional_id, request.producer_id, request.producer_epoch, request.committed
        )
    except TxnError as error:
        code = fenced_for_version(error.code, ctx.api_version, 2)
    return build(ctx.response_class, throttle_time=timedelta(0), error_code=code,
                 producer_id=-1, producer_epoch=-1)
