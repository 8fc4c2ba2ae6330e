"""DescribeDelegationToken (key 41), v1-v3: the tokens of the owners asked for (null: all; a
token counts for its owner and its renewers) that the requester may see: its own or ones it may
renew, and others where the ACLs allow Describe on the token or DescribeTokens on its owner (all,
without an authorizer, as in Kafka). Each with its HMAC, so an owner can hand a token on. An empty
owner list gets no tokens; errors as for CreateDelegationToken."""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.security.acl import Operation, ResourceType
from odradek.security.delegation_token import describable, split_principal

API_KEY = 41
MIN_VERSION = 1
MAX_VERSION = 3


async def handle(ctx: RequestContext, request):
    tokens = ctx.services.tokens
    if not ctx.may_request_tokens():
        return _answer(ctx, ErrorCode.delegation_token_request_not_allowed)
    if tokens is None or not tokens.enabled:
        return _answer(ctx, ErrorCode.delegation_token_auth_disabled)
    if request.owners is not None and not request.owners:
        return _answer(ctx, ErrorCode.none)
    owners = None if request.owners is None else [f"{o.principal_type}:{o.principal_name}" for o in request.owners]
    token_class = sibling(ctx.response_class, "DescribedDelegationToken")
    renewer_class = sibling(ctx.response_class, "DescribedDelegationTokenRenewer")
    shown = []
    for token in sorted(tokens.tokens(), key=lambda token: token.issue_ms):
        if not describable(token, ctx.principal, owners,
                           lambda token_id: ctx.allowed(Operation.DESCRIBE, ResourceType.DELEGATION_TOKEN, token_id),
                           lambda owner: ctx.allowed(Operation.DESCRIBE_TOKENS, ResourceType.USER, owner)):
            continue
        owner_type, owner_name = split_principal(token.owner)
        requester_type, requester_name = split_principal(token.requester)
        renewers = tuple(build(renewer_class, principal_type=kind, principal_name=name)
                         for kind, name in map(split_principal, token.renewers))
        shown.append(build(token_class, principal_type=owner_type, principal_name=owner_name,
                           token_requester_principal_type=requester_type, token_requester_principal_name=requester_name,
                           issue_timestamp=token.issue_ms, expiry_timestamp=token.expiry_ms, max_timestamp=token.max_ms,
                           token_id=token.token_id, hmac=tokens.hmac(token.token_id), renewers=renewers))
    return _answer(ctx, ErrorCode.none, tuple(shown))


def _answer(ctx: RequestContext, error: ErrorCode, shown: tuple = ()):
    return build(ctx.response_class, error_code=error, tokens=shown, throttle_time=timedelta(0))
