"""EndTxn (key 26), v0-v5: commit or abort the producer's transaction. The outcome is decided
once the coordinator has stored PrepareCommit/PrepareAbort; the answer waits a moment for the
markers. v5 is transaction version 2 (KIP-890 part 2): the end bumps the producer's epoch, and
the answer carries the producer id and epoch to go on with."""

from __future__ import annotations

from datetime import timedelta

from odradek.coordinator.transaction_coordinator import TxnError
from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.handlers.transactions import fenced_for_version
from odradek.protocol.errors import ErrorCode

API_KEY = 26
MIN_VERSION = 0
MAX_VERSION = 5
TRANSACTION_V2_VERSION = 5


async def handle(ctx: RequestContext, request):
    code, producer_id, epoch = ErrorCode.none, -1, -1
    if not ctx.allowed(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        return build(ctx.response_class, throttle_time=timedelta(0), error_code=ErrorCode.transactional_id_authorization_failed,
                     producer_id=-1, producer_epoch=-1)
    try:
        producer_id, epoch = await ctx.services.transactions.end_transaction(
            request.transactional_id, request.producer_id, request.producer_epoch, request.committed,
            bump_epoch=ctx.api_version >= TRANSACTION_V2_VERSION,
        )
    except TxnError as error:
        code = fenced_for_version(error.code, ctx.api_version, 2)
    return build(ctx.response_class, throttle_time=timedelta(0), error_code=code,
                 producer_id=producer_id, producer_epoch=epoch)
