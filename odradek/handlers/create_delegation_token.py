"""CreateDelegationToken (key 38), v1-v3: a token for the requester, or (v3, KIP-373) for another
owner when the requester may CreateTokens on that user.

Refused with Kafka's errors: DELEGATION_TOKEN_REQUEST_NOT_ALLOWED on a PLAINTEXT listener, an SSL
one without a client certificate, or a connection that logged in with a token;
DELEGATION_TOKEN_AUTHORIZATION_FAILED for another owner without CreateTokens; INVALID_PRINCIPAL_TYPE
for a renewer that is not a User; DELEGATION_TOKEN_AUTH_DISABLED without delegation.token.secret.key.
The lifetime asked for (-1: the broker's) is capped at delegation.token.max.lifetime.ms.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.security.acl import Operation, ResourceType
from odradek.security.delegation_token import USER_TYPE, split_principal

API_KEY = 38
MIN_VERSION = 1
MAX_VERSION = 3


def at(ms: int) -> datetime:
    """A timestamp field's value; -1 (no time) stays -1 on the wire."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


async def handle(ctx: RequestContext, request):
    requester = ctx.principal
    owner_name = getattr(request, "owner_principal_name", None)
    owner = f"{request.owner_principal_type or USER_TYPE}:{owner_name}" if owner_name else requester
    renewers = tuple(f"{renewer.principal_type}:{renewer.principal_name}" for renewer in request.renewers)
    tokens = ctx.services.tokens
    if not ctx.may_request_tokens():
        return _answer(ctx, ErrorCode.delegation_token_request_not_allowed, owner, requester)
    if owner != requester and not ctx.allowed(Operation.CREATE_TOKENS, ResourceType.USER, owner):
        return _answer(ctx, ErrorCode.delegation_token_authorization_failed, owner, requester)
    if any(renewer.principal_type != USER_TYPE for renewer in request.renewers):
        return _answer(ctx, ErrorCode.invalid_principal_type, owner, requester)
    try:
        if tokens is None or not tokens.enabled:
            raise KafkaError(ErrorCode.delegation_token_auth_disabled)
        token = await ctx.services.controller.run(tokens.create, owner, requester, renewers,
                                                  int(request.max_lifetime.total_seconds() * 1000))
    except KafkaError as error:
        return _answer(ctx, error.code, owner, requester)
    return _answer(ctx, ErrorCode.none, owner, requester, token.issue_ms, token.expiry_ms, token.max_ms,
                   token.token_id, tokens.hmac(token.token_id))


def _answer(ctx: RequestContext, error: ErrorCode, owner: str, requester: str, issued: int = -1, expires: int = -1,
            max_ms: int = -1, token_id: str = "", hmac: bytes = b""):
    owner_type, owner_name = split_principal(owner)
    requester_type, requester_name = split_principal(requester)
    return build(ctx.response_class, error_code=error, principal_type=owner_type, principal_name=owner_name,
                 token_requester_principal_type=requester_type, token_requester_principal_name=requester_name,
                 issue_timestamp=at(issued), expiry_timestamp=at(expires), max_timestamp=at(max_ms),
                 token_id=token_id, hmac=hmac, throttle_time=timedelta(0))
