"""ExpireDelegationToken (key 40), v1-v2: the token's owner or a renewer ends it now (a negative
expiry_time_period: it is removed and logs in no more) or sets it to expire after the period,
never past its max lifetime. Errors as for RenewDelegationToken."""

from __future__ import annotations

from odradek.handlers.context import RequestContext
from odradek.handlers.renew_delegation_token import change_expiry

API_KEY = 40
MIN_VERSION = 1
MAX_VERSION = 2


async def handle(ctx: RequestContext, request):
    return await change_expiry(ctx, request.hmac, request.expiry_time_period, "expire")
