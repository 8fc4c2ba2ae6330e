"""AddOffsetsToTxn (key 25), v0-v4: a transaction will commit a group's offsets, so the group's
`__consumer_offsets` partition joins it (the offsets follow with TxnOffsetCommit)."""

from __future__ import annotations

from datetime import timedelta

from odradek.coordinator.transaction_coordinator import TxnError
from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.handlers.transactions import fenced_for_version
from odradek.protocol.errors import ErrorCode

API_KEY = 25
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx: RequestContext, request):
    code = ErrorCode.none
    if not ctx.allowed(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        return build(ctx.response_class, throttle_time=timedelta(0), error_code=ErrorCode.transactional_id_authorization_failed)
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        return build(ctx.response_class, throttle_time=timedelta(0), error_code=ErrorCode.group_authorization_failed)
    try:
        await ctx.services.controller.run(ctx.services.groups.store.ensure_topic)
        await ctx.services.transactions.add_offsets(
            request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
        )
    except TxnError as error:
        code = fenced_for_version(error.code, ctx.api_version, 2)
    return build(ctx.response_class, throttle_time=timedelta(0), error_code=code)
