"""Who is on a connection: its principal and, on a SASL listener, where its authentication stands.

Kafka's SASL sequence, which this state machine follows:
  ApiVersions (optional, any number) -> SaslHandshake(mechanism) -> SaslAuthenticate x N -> requests.
A SaslHandshake v0 is followed by raw SASL tokens (a size and the bytes, no request header) instead
of SaslAuthenticate requests. Until authentication completes only those three APIs are served; any
other request, a second handshake, or a failed exchange ends the connection after its answer.
With `connections.max.reauth.ms` the session has a lifetime (KIP-368): the client re-authenticates
on the same connection before it ends, as the same principal, or is disconnected.
Runs on the event loop; one per connection.
"""

from __future__ import annotations

from collections.abc import Callable

from odradek.security.sasl import SaslAuthenticationFailed, SaslServer
from odradek.security.tls import ANONYMOUS

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36


class Session:
    def __init__(self, principal: str = ANONYMOUS, *, mechanisms: dict[str, Callable[[], SaslServer]] | None = None,
                 max_unauthenticated_bytes: int = 524288, reauth_ms: int = 0, now_ms: Callable[[], int] = lambda: 0) -> None:
        self.principal = principal
        self.sasl = mechanisms is not None
        self.mechanisms = mechanisms or {}
        self.max_unauthenticated_bytes = max_unauthenticated_bytes
        self.reauth_ms = reauth_ms
        self._now_ms = now_ms
        self.authenticated = not self.sasl
        self.state = "handshake" if self.sasl else "done"  # handshake | authenticate | raw | done
        self.close_after_response = False
        self.throttle_ms = 0  # after this response the connection reads nothing for so long (client quotas)
        self.expires_at_ms: int | None = None
        self._server: SaslServer | None = None
        self.mechanism: str | None = None
        self.token_authenticated = False  # logged in with a delegation token (it may not ask for tokens)

    # -- what the connection may do ----------------------------------------------------------------

    def refusal(self, api_key: int) -> str | None:
        """Why a request with this API key ends the connection instead of being served, or None."""
        if not self.sasl:
            return None
        if not self.authenticated and api_key not in (API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE):
            return "it sent a request before completing SASL authentication"
        if self.authenticated and self.expires_at_ms is not None and self._now_ms() >= self.expires_at_ms \
                and api_key not in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
            return "its SASL session expired without re-authentication (connections.max.reauth.ms)"
        return None

    def frame_limit(self, socket_request_max_bytes: int) -> int:
        return socket_request_max_bytes if self.authenticated else min(self.max_unauthenticated_bytes, socket_request_max_bytes)

    # -- SaslHandshake and SaslAuthenticate ---------------------------------------------------------

    def handshake(self, mechanism: str, version: int) -> str | None:
        """Start an exchange; returns the refusal's reason (the answer is then an error and the
        connection closes), or None."""
        reauthenticating = self.authenticated and self.reauth_ms > 0
        if self.state != "handshake" and not (reauthenticating and self.state == "done"):
            self.close_after_response = True
            return "illegal"
        factory = self.mechanisms.get(mechanism)
        if factory is None:
            self.close_after_response = True
            return "unsupported"
        self.mechanism = mechanism
        self._server = factory()
        self.state = "raw" if version == 0 else "authenticate"
        return None

    def authenticate(self, token: bytes) -> bytes:
        """One client message of the exchange; the server's answer. SaslAuthenticationFailed ends
        the connection after the error is sent."""
        if self.state not in ("authenticate", "raw") or self._server is None:
            self.close_after_response = True
            raise SaslAuthenticationFailed("Unexpected SaslAuthenticate: no SaslHandshake before it")
        try:
            challenge = self._server.evaluate(token)
        except SaslAuthenticationFailed:
            self.close_after_response = True
            raise
        if self._server.complete:
            principal = self._server.principal
            if self.authenticated and principal != self.principal:
                self.close_after_response = True
                raise SaslAuthenticationFailed("Cannot change principals during re-authentication")
            self.principal = principal
            self.token_authenticated = getattr(self._server, "token_authenticated", False)
            self.authenticated = True
            self.state = "done"
            credential_expiry_ms = getattr(self._server, "credential_expiry_ms", None)
            self._server = None
            if self.reauth_ms > 0:  # a token's session ends with the token, as in Kafka
                self.expires_at_ms = self._now_ms() + self.reauth_ms
                if credential_expiry_ms is not None:
                    self.expires_at_ms = min(self.expires_at_ms, credential_expiry_ms)
        return challenge

    def session_lifetime_ms(self) -> int:
        """What SaslAuthenticate v1+ tells the client: 0 for no limit."""
        if self.expires_at_ms is None:
            return 0
        return max(self.expires_at_ms - self._now_ms(), 0)
