"""RenewDelegationToken (key 39), v1-v2: the token's owner or a renewer moves its expiry to now +
renew_period (-1: delegation.token.expiry.time.ms), never past its max lifetime. Kafka's errors:
DELEGATION_TOKEN_NOT_FOUND, DELEGATION_TOKEN_OWNER_MISMATCH, DELEGATION_TOKEN_EXPIRED,
DELEGATION_TOKEN_REQUEST_NOT_ALLOWED (see create_delegation_token.py), DELEGATION_TOKEN_AUTH_DISABLED."""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.create_delegation_token import at
from odradek.handlers.responses import build
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 39
MIN_VERSION = 1
MAX_VERSION = 2


async def handle(ctx: RequestContext, request):
    return await change_expiry(ctx, request.hmac, request.renew_period, "renew")


async def change_expiry(ctx: RequestContext, hmac: bytes, period: timedelta, change: str):
    """Renew or expire (the ExpireDelegationToken handler shares this): the answer with the new expiry time."""
    tokens = ctx.services.tokens
    error, expiry = ErrorCode.none, -1
    try:
        if not ctx.may_request_tokens():
            raise KafkaError(ErrorCode.delegation_token_request_not_allowed)
        if tokens is None or not tokens.enabled:
            raise KafkaError(ErrorCode.delegation_token_auth_disabled)
        method = tokens.renew if change == "renew" else tokens.expire
        expiry = await ctx.services.controller.run(method, ctx.principal, bytes(hmac), int(period.total_seconds() * 1000))
    except KafkaError as failure:
        error = failure.code
    return build(ctx.response_class, error_code=error, expiry_timestamp=at(expiry), throttle_time=timedelta(0))
