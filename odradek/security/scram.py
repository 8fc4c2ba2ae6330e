"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): credentials and both sides of the exchange.

A credential is what Kafka stores, never the password: salt, StoredKey = H(HMAC(SaltedPassword,
"Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key") and the iteration count, written as
Kafka writes it (`salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=<n>`), so Kafka's tools and
odradek read each other's. The server proves it knows ServerKey; the client proves it knows the
password, and neither reveals it.

An unknown user is not told apart from a wrong password: the server answers the first message
with a salt derived from the name and a secret of this process, and fails at the proof, with the
same message as a wrong password.

A delegation token logs in with Kafka's `tokenauth=true` extension in the client-first message:
the user name is the token id, the credential is the token's (cluster/delegation_tokens.py), and
the principal is the token's owner, marked as token-authenticated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from odradek.security.sasl import SaslAuthenticationFailed

MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISM_TYPES = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}  # Kafka's ScramMechanism ids
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
DEFAULT_ITERATIONS = 4096

_UNKNOWN_USER_SECRET = os.urandom(32)


def _failed(mechanism: str) -> SaslAuthenticationFailed:
    return SaslAuthenticationFailed(
        f"Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
    )


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_kafka(self) -> str:
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        return (f"salt={b64(self.salt)},stored_key={b64(self.stored_key)},"
                f"server_key={b64(self.server_key)},iterations={self.iterations}")

    @classmethod
    def from_kafka(cls, text: str) -> "ScramCredential":
        """ValueError when `text` is not a stored credential."""
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        try:
            return cls(base64.b64decode(fields["salt"], validate=True), base64.b64decode(fields["stored_key"], validate=True),
                       base64.b64decode(fields["server_key"], validate=True), int(fields["iterations"]))
        except (KeyError, ValueError) as error:
            raise ValueError(f"not a SCRAM credential ({error.__class__.__name__})") from None


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(MECHANISMS[mechanism], password.encode("utf-8"), salt, iterations)


def credential_from_salted(mechanism: str, salted: bytes, salt: bytes, iterations: int) -> ScramCredential:
    digest = MECHANISMS[mechanism]
    client_key = hmac.digest(salted, b"Client Key", digest)
    return ScramCredential(salt, hashlib.new(digest, client_key).digest(),
                           hmac.digest(salted, b"Server Key", digest), iterations)


def password_matches(mechanism: str, credential: ScramCredential, password: str) -> bool:
    """Whether `password` is the one `credential` was made from (HTTP Basic logins check users'
    SCRAM credentials this way; the stored key is all that is kept)."""
    salted = salted_password(mechanism, password, credential.salt, credential.iterations)
    return hmac.compare_digest(credential_from_salted(mechanism, salted, credential.salt, credential.iterations).stored_key,
                               credential.stored_key)


def credential_from_password(mechanism: str, password: str, iterations: int = DEFAULT_ITERATIONS,
                             salt: bytes | None = None) -> ScramCredential:
    salt = salt if salt is not None else os.urandom(32)
    return credential_from_salted(mechanism, salted_password(mechanism, password, salt, iterations), salt, iterations)


def _attributes(message: str) -> dict[str, str]:
    """RFC 5802's one-letter attributes, and Kafka's extensions after them (tokenauth=true)."""
    attributes = {}
    for part in message.split(","):
        key, equals, value = part.partition("=")
        if not key or not equals:
            raise ValueError(f"malformed attribute {part[:20]!r}")
        attributes.setdefault(key, value)
    return attributes


def _saslname(name: str) -> str:
    """RFC 5802 decoding of a user name: =2C is ',' and =3D is '='; any other '=' is invalid."""
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise ValueError("invalid escape in the user name")
    return name.replace("=2C", ",").replace("=3D", "=")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


class ScramServer:
    """One exchange: client-first -> server-first, client-final -> server-final."""

    def __init__(self, mechanism: str, credential_of: Callable[[str], ScramCredential | None],
                 token_of: Callable[[str, str], tuple[str, ScramCredential, int] | None] | None = None) -> None:
        self.mechanism = mechanism
        self._digest = MECHANISMS[mechanism]
        self._credential_of = credential_of
        self._token_of = token_of  # (token id, mechanism) -> (owner, credential, expiry ms) of a valid token
        self._step = 0
        self.complete = False
        self.principal: str | None = None
        self.token_authenticated = False
        self.credential_expiry_ms: int | None = None  # when the token that logged in expires
        self._credential: ScramCredential | None = None
        self._known = False
        self._first_bare = self._server_first = self._nonce = self._principal = ""

    def evaluate(self, token: bytes) -> bytes:
        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslAuthenticationFailed(f"Authentication failed: invalid {self.mechanism} message (not UTF-8)") from None
        if self._step == 0:
            return self._client_first(message)
        if self._step == 1:
            return self._client_final(message)
        raise SaslAuthenticationFailed(f"Authentication failed: the {self.mechanism} exchange is already complete")

    def _client_first(self, message: str) -> bytes:
        gs2, _, rest = message.partition(",")
        authzid, _, bare = rest.partition(",")
        if gs2 not in ("n", "y") or not bare:
            raise SaslAuthenticationFailed(
                f"Authentication failed: invalid {self.mechanism} client-first message (channel binding is not supported)")
        try:
            attributes = _attributes(bare)
            username = _saslname(attributes["n"])
            client_nonce = attributes["r"]
        except (KeyError, ValueError) as error:
            raise SaslAuthenticationFailed(f"Authentication failed: invalid {self.mechanism} client-first message: {error}") from None
        if authzid and _saslname(authzid[2:] if authzid.startswith("a=") else authzid) != username:
            raise SaslAuthenticationFailed("Authentication failed: Client requested an "
                                           "authorization id that is different from username")
        self._principal = f"User:{username}"
        if attributes.get("tokenauth", "").lower() == "true":
            token = self._token_of(username, self.mechanism) if self._token_of is not None else None
            credential = None
            if token is not None:
                self._principal, credential, self.credential_expiry_ms = token
                self.token_authenticated = True
        else:
            credential = self._credential_of(username)
        self._known = credential is not None
        if credential is None:
            fake = hmac.digest(_UNKNOWN_USER_SECRET, username.encode("utf-8"), "sha256")
            credential = ScramCredential(fake[:16] * 2, os.urandom(64), os.urandom(64), DEFAULT_ITERATIONS)
        self._credential = credential
        self._nonce = client_nonce + secrets.token_urlsafe(24)
        self._first_bare = bare
        self._server_first = (f"r={self._nonce},s={base64.b64encode(credential.salt).decode()},"
                              f"i={credential.iterations}")
        self._step = 1
        return self._server_first.encode()

    def _client_final(self, message: str) -> bytes:
        without_proof, _, proof_part = message.rpartition(",p=")
        try:
            attributes = _attributes(without_proof)
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError as error:
            raise SaslAuthenticationFailed(f"Authentication failed: invalid {self.mechanism} client-final message: {error}") from None
        if attributes.get("r") != self._nonce or attributes.get("c") not in ("biws", "eSws"):  # "n,," or "y,,"
            raise _failed(self.mechanism)  # Kafka's answer to a wrong nonce or channel binding too
        credential = self._credential
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode("utf-8")
        signature = hmac.digest(credential.stored_key, auth_message, self._digest)
        client_key = _xor(proof, signature)
        computed = hashlib.new(self._digest, client_key).digest()
        if not self._known or len(proof) != len(signature) or not hmac.compare_digest(computed, credential.stored_key):
            raise _failed(self.mechanism)
        self._step = 2
        self.complete = True
        self.principal = self._principal
        server_signature = hmac.digest(credential.server_key, auth_message, self._digest)
        return b"v=" + base64.b64encode(server_signature)


class ScramClient:
    """The client's side, for odradek's own client (CLI, broker to broker)."""

    def __init__(self, mechanism: str, username: str, password: str, *, token: bool = False) -> None:
        """`token`: log in with a delegation token (its id and base64 HMAC as username and password)."""
        self.mechanism = mechanism
        self._digest = MECHANISMS[mechanism]
        self._password = password
        self._nonce = secrets.token_urlsafe(24)
        name = username.replace("=", "=3D").replace(",", "=2C")
        self._first_bare = f"n={name},r={self._nonce}" + (",tokenauth=true" if token else "")
        self._server_signature = b""

    def first_message(self) -> bytes:
        return f"n,,{self._first_bare}".encode()

    def final_message(self, server_first: bytes) -> bytes:
        """ValueError when the server's message is not one to answer."""
        text = server_first.decode("utf-8")
        attributes = _attributes(text)
        nonce, salt, iterations = attributes["r"], base64.b64decode(attributes["s"]), int(attributes["i"])
        if not nonce.startswith(self._nonce) or iterations < MIN_ITERATIONS:
            raise ValueError("the server's SCRAM first message is not acceptable")
        salted = salted_password(self.mechanism, self._password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self._digest)
        stored_key = hashlib.new(self._digest, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        proof = _xor(client_key, hmac.digest(stored_key, auth_message, self._digest))
        server_key = hmac.digest(salted, b"Server Key", self._digest)
        self._server_signature = hmac.digest(server_key, auth_message, self._digest)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_final(self, server_final: bytes) -> None:
        attributes = _attributes(server_final.decode("utf-8"))
        if "e" in attributes:
            raise ValueError(f"the server refused: {attributes['e']}")
        if not hmac.compare_digest(base64.b64decode(attributes.get("v", "")), self._server_signature):
            raise ValueError("the server's SCRAM signature is wrong: it does not know this user's credential")
