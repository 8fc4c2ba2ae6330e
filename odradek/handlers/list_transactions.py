"""ListTransactions (key 66), v0-v2: the transactional ids this broker coordinates, filtered by
state, producer id, (v1) time open and (v2) a regular expression on the id. Admin clients ask
every broker and merge the answers (`kafka-transactions list`)."""

from __future__ import annotations

import re
from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 66
MIN_VERSION = 0
MAX_VERSION = 2


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    pattern = getattr(request, "transactional_id_pattern", None)
    if pattern:
        try:
            re.compile(pattern)
        except re.error:
            return build(response, throttle_time=timedelta(0), error_code=ErrorCode.invalid_regular_expression,
                         unknown_state_filters=(), transaction_states=())
    found, unknown = ctx.services.transactions.list_transactions(
        request.state_filters, request.producer_id_filters, getattr(request, "duration_filter", -1), pattern,
    )
    found = [meta for meta in found if ctx.allowed(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, meta.transactional_id)]
    state_class = sibling(response, "TransactionState")
    states = tuple(
        build(state_class, transactional_id=meta.transactional_id, producer_id=meta.producer_id,
              transaction_state=meta.state.label)
        for meta in found
    )
    return build(response, throttle_time=timedelta(0), error_code=ErrorCode.none,
                 unknown_state_filters=tuple(unknown), transaction_states=states)
