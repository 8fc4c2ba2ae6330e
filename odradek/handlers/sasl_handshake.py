"""SaslHandshake (key 17), v0-v1: the client names its SASL mechanism (security/session.py).

On a listener without SASL, or once the connection has authenticated (and may not
re-authenticate), the answer is ILLEGAL_SASL_STATE, as in Kafka; an unknown mechanism gets
UNSUPPORTED_SASL_MECHANISM with the mechanisms offered. Either closes the connection after the answer.
"""

from __future__ import annotations

import logging

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

API_KEY = 17
MIN_VERSION = 0
MAX_VERSION = 1


async def handle(ctx: RequestContext, request):
    session = ctx.session
    offered = tuple(session.mechanisms) if session is not None else ()
    if session is None or not session.sasl:
        return build(ctx.response_class, error_code=ErrorCode.illegal_sasl_state, mechanisms=offered)
    refused = session.handshake(request.mechanism, ctx.api_version)
    if refused == "unsupported":
        log.info("Closing connection from %s: SASL mechanism %r is not enabled on listener %s (offered: %s)",
                 ctx.peer, request.mechanism[:64], ctx.listener_name, ", ".join(offered))
        return build(ctx.response_class, error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=offered)
    if refused is not None:
        log.info("Closing connection from %s: unexpected SaslHandshake", ctx.peer)
        return build(ctx.response_class, error_code=ErrorCode.illegal_sasl_state, mechanisms=offered)
    return build(ctx.response_class, error_code=ErrorCode.none, mechanisms=offered)
