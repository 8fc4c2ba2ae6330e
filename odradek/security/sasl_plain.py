"""SASL/PLAIN (RFC 4616) on the broker: `[authzid] NUL username NUL password`, checked against the
accounts of the listener's PlainLoginModule (`user_<name>="<password>"`).

Passwords are compared in constant time, and an unknown user gets the same answer as a wrong
password, as in Kafka.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from odradek.security.sasl import SaslAuthenticationFailed

INVALID = "Authentication failed: Invalid username or password"


class PlainServer:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self.complete = False
        self.principal: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslAuthenticationFailed("Authentication failed: the PLAIN exchange is already complete")
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise SaslAuthenticationFailed("Authentication failed: invalid SASL/PLAIN response: "
                                           "expected authorization id, username and password separated by NUL")
        try:
            authzid, username, password = (part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise SaslAuthenticationFailed(INVALID) from None
        if not username:
            raise SaslAuthenticationFailed("Authentication failed: username not specified")
        if not password:
            raise SaslAuthenticationFailed("Authentication failed: password not specified")
        expected = self._users.get(username)
        # compare against something even for an unknown user, so the time taken says nothing
        matches = hmac.compare_digest(password.encode(), (expected if expected is not None else "\0" + password).encode())
        if expected is None or not matches:
            raise SaslAuthenticationFailed(INVALID)
        if authzid and authzid != username:
            raise SaslAuthenticationFailed("Authentication failed: Client requested an authorization id that is "
                                           "different from username")
        self.complete = True
        self.principal = f"User:{username}"
        return b""


def plain_client_token(username: str, password: str) -> bytes:
    return b"\0" + username.encode() + b"\0" + password.encode()
