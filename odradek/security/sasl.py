"""What every SASL mechanism's server side shares: the exchange's interface and its one error.

A mechanism is asked `evaluate(token)` once per client message and returns the next challenge
(possibly empty); `complete` and `principal` say when and as whom the client authenticated. A
failure raises SaslAuthenticationFailed with a message safe to send to the client: it never says
whether the user exists.
"""

from __future__ import annotations

from typing import Protocol


class SaslAuthenticationFailed(Exception):
    """Kafka's SaslAuthenticationException: answered SASL_AUTHENTICATION_FAILED, then the
    connection closes."""


class SaslServer(Protocol):
    """Mechanisms that log in with a delegation token also have `token_authenticated` (True then)
    and `credential_expiry_ms` (when the token expires), which the session reads when present."""

    complete: bool
    principal: str | None  # "User:<name>" once complete

    def evaluate(self, token: bytes) -> bytes: ...
