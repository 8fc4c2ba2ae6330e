"""SaslAuthenticate (key 36), v0-v2: one message of the SASL exchange the handshake started.

A failure answers SASL_AUTHENTICATION_FAILED with a message that does not tell whether the user
exists, logs one line without secrets, and closes the connection. v1+ tells the client how long
its session lasts (KIP-368, connections.max.reauth.ms; 0 means no limit).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.protocol.errors import ErrorCode
from odradek.security.sasl import SaslAuthenticationFailed

log = logging.getLogger(__name__)

API_KEY = 36
MIN_VERSION = 0
MAX_VERSION = 2


async def handle(ctx: RequestContext, request):
    session = ctx.session
    if session is None or not session.sasl:
        return build(ctx.response_class, error_code=ErrorCode.illegal_sasl_state,
                     error_message="SaslAuthenticate is not expected on this listener", auth_bytes=b"",
                     session_lifetime=timedelta(0))
    try:
        challenge = session.authenticate(bytes(request.auth_bytes))
    except SaslAuthenticationFailed as failure:
        log.info("Failed authentication with %s (%s) on listener %s: %s", ctx.peer, session.mechanism,
                 ctx.listener_name, failure)
        return build(ctx.response_class, error_code=ErrorCode.sasl_authentication_failed, error_message=str(failure),
                     auth_bytes=b"", session_lifetime=timedelta(0))
    if session.authenticated and session.state == "done":
        log.debug("%s authenticated as %s with %s", ctx.peer, session.principal, session.mechanism)
    return build(ctx.response_class, error_code=ErrorCode.none, error_message=None, auth_bytes=challenge,
                 session_lifetime=timedelta(milliseconds=session.session_lifetime_ms()))
