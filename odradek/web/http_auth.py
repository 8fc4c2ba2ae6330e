"""Who an HTTP request comes from, and what it may see: the broker's own security on the HTTP side.

`http.authentication.method` NONE makes every request User:ANONYMOUS; BASIC (RFC 7617) accepts
the users a Kafka client could log in as: their SCRAM credentials (kafka-configs --add-config
'SCRAM-SHA-256=[password=...]') and the PLAIN accounts of the SASL listeners. When
`authorizer.class.name` is set, each REST operation asks the broker's authorizer what Kafka would
ask for the same operation over the Kafka protocol (Describe on a topic to see it, Write to produce,
Read to browse, ...), so ACLs and super.users mean the same on both sides.

A SCRAM check costs a PBKDF2 of thousands of iterations: it runs in a worker thread, and a
successful login is remembered for a minute (by a hash of the password, never the password).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable

from odradek.security.acl import Operation, ResourceType
from odradek.security.scram import MECHANISMS as SCRAM_MECHANISMS
from odradek.security.scram import ScramCredential, password_matches
from odradek.web.http_server import HttpError, HttpRequest

ANONYMOUS = "User:ANONYMOUS"
REMEMBER_S = 60.0
REMEMBERED_LOGINS = 1024
CHALLENGE = [("WWW-Authenticate", 'Basic realm="odradek", charset="UTF-8"')]


class HttpAuthenticator:
    def __init__(self, method: str, stored_credential: Callable[[str, str], str | None],
                 plain_accounts: dict[str, str]) -> None:
        self.method = method.upper()
        self.stored_credential = stored_credential
        self.plain_accounts = plain_accounts
        self._remembered: OrderedDict[tuple[str, bytes], float] = OrderedDict()

    async def principal(self, request: HttpRequest) -> str:
        """The request's principal ("User:alice"); HttpError 401 when BASIC and not logged in."""
        if self.method != "BASIC":
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic" or not token:
            raise HttpError(401, "log in with HTTP Basic authentication (a Kafka user's name and password)", CHALLENGE)
        try:
            user, colon, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HttpError(401, "the Authorization header is not valid Basic credentials", CHALLENGE) from None
        if not colon or not user:
            raise HttpError(401, "the Authorization header is not valid Basic credentials", CHALLENGE)
        key = (user, hashlib.sha256(password.encode()).digest())
        now = time.monotonic()
        if self._remembered.get(key, 0.0) > now:
            return f"User:{user}"
        if not await asyncio.to_thread(self._check, user, password):
            raise HttpError(401, f"wrong user name or password for {user!r}", CHALLENGE)
        self._remembered[key] = now + REMEMBER_S
        self._remembered.move_to_end(key)
        while len(self._remembered) > REMEMBERED_LOGINS:
            self._remembered.popitem(last=False)
        return f"User:{user}"

    def _check(self, user: str, password: str) -> bool:
        expected = self.plain_accounts.get(user)
        if expected is not None and hmac.compare_digest(expected.encode(), password.encode()):
            return True
        for mechanism in SCRAM_MECHANISMS:
            stored = self.stored_credential(user, mechanism)
            if stored is None:
                continue
            try:
                credential = ScramCredential.from_kafka(stored)
            except ValueError:
                continue
            if password_matches(mechanism, credential, password):
                return True
        return False


class HttpAuthorizer:
    """The broker's ACLs for one HTTP request's principal and address; everything is allowed when
    no authorizer is configured."""

    def __init__(self, authorizer_of: Callable[[], object | None], principal: str, host: str) -> None:
        self._authorizer_of = authorizer_of
        self.principal = principal
        self.host = host

    def allows(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        authorizer = self._authorizer_of()
        return authorizer is None or authorizer.authorize(self.principal, self.host, operation, resource_type, name)

    def require(self, operation: Operation, resource_type: ResourceType, name: str) -> None:
        """HttpError 403 naming what is missing, as Kafka's *_AUTHORIZATION_FAILED errors do."""
        if not self.allows(operation, resource_type, name):
            what = resource_type.name.lower().replace("_", " ")
            raise HttpError(403, f"{self.principal} is not authorized to {operation.name} {what} {name!r}")
