"""Delegation tokens (KIP-48): what a token is, how its secret is made, and who may use it.

A token lets a job act as its owner without the owner's password: a user authenticated over SASL
or mutual TLS asks for one (CreateDelegationToken) and hands its id and HMAC to the job, which
logs in with SCRAM, the id as user name, the base64 HMAC as password and the `tokenauth=true`
extension. The HMAC is HmacSHA512 of the id under `delegation.token.secret.key`, so every broker
sharing that key computes the same secret and nothing secret is stored. A token ends at its
expiry time (renewable by its owner and renewers, up to its max lifetime) or when expired
explicitly.

Stored as Kafka stores it in ZooKeeper (`/delegation_token/tokens/<id>`): JSON with version 3,
the owner, the requester and renewers as principals (URL-encoded, Kafka's Sanitizer), the three
timestamps and the id. Pure data and rules: no I/O.
"""

from __future__ import annotations

import base64
import hmac
import urllib.parse
import uuid
from dataclasses import dataclass, replace

from odradek.security.scram import MIN_ITERATIONS, ScramCredential, credential_from_password

STORED_VERSION = 3
USER_TYPE = "User"


def new_token_id() -> str:
    """22 characters of URL-safe base64 over a random UUID, as Kafka's token ids."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def token_hmac(token_id: str, secret_key: bytes) -> bytes:
    return hmac.digest(secret_key, token_id.encode("utf-8"), "sha512")


def split_principal(principal: str) -> tuple[str, str]:
    """("User", "alice") from "User:alice" (the name may itself hold colons)."""
    kind, _, name = principal.partition(":")
    return kind, name


def _sanitize(text: str) -> str:
    """Kafka's Sanitizer.sanitize: URL-encoded but for letters, digits and '-_.', spaces as %20."""
    return urllib.parse.quote(text, safe="-_.").replace("~", "%7E")


def _desanitize(text: str) -> str:
    return urllib.parse.unquote_plus(text)


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    owner: str  # "User:alice"
    requester: str  # who asked for it: the owner, or one allowed to CreateTokens for the owner
    renewers: tuple[str, ...]
    issue_ms: int
    max_ms: int
    expiry_ms: int

    def expired(self, now_ms: int) -> bool:
        return self.max_ms < now_ms or self.expiry_ms < now_ms

    def owner_or_renewer(self, principal: str) -> bool:
        return principal == self.owner or principal in self.renewers

    def with_expiry(self, expiry_ms: int) -> "TokenInfo":
        return replace(self, expiry_ms=min(expiry_ms, self.max_ms))

    def to_stored(self) -> dict:
        return {
            "version": STORED_VERSION,
            "owner": _sanitize(self.owner),
            "tokenRequester": _sanitize(self.requester),
            "renewers": [_sanitize(renewer) for renewer in self.renewers],
            "issueTimestamp": self.issue_ms,
            "maxTimestamp": self.max_ms,
            "expiryTimestamp": self.expiry_ms,
            "tokenId": self.token_id,
        }

    @classmethod
    def from_stored(cls, stored: dict) -> "TokenInfo":
        """ValueError when `stored` is not a token as Kafka (1-3) or odradek writes it."""
        try:
            version = int(stored["version"])
            if not 1 <= version <= STORED_VERSION:
                raise ValueError(f"unknown version {version}")
            owner = _desanitize(str(stored["owner"]))
            return cls(
                token_id=str(stored["tokenId"]),
                owner=owner,
                requester=_desanitize(str(stored["tokenRequester"])) if version >= 3 else owner,
                renewers=tuple(_desanitize(str(renewer)) for renewer in stored["renewers"]),
                issue_ms=int(stored["issueTimestamp"]),
                max_ms=int(stored["maxTimestamp"]),
                expiry_ms=int(stored["expiryTimestamp"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a delegation token ({error})") from None


def token_credential(token_hmac_bytes: bytes, mechanism: str) -> ScramCredential:
    """The SCRAM credential for logging in with a token: its password is the base64 HMAC, at the
    minimum iteration count, as Kafka derives it."""
    return credential_from_password(mechanism, base64.b64encode(token_hmac_bytes).decode(), MIN_ITERATIONS)


def describable(token: TokenInfo, requester: str, owners: list[str] | None, may_describe_token, may_describe_owner) -> bool:
    """Whether DescribeDelegationToken shows `token` to `requester`: among the `owners` asked for
    (a token counts for its owner and its renewers; None: all), and the requester's own or
    renewable token, or one the ACLs let it see (Describe on the token, DescribeTokens on its owner)."""
    if owners is not None and not any(token.owner_or_renewer(owner) for owner in owners):
        return False
    return token.owner_or_renewer(requester) or may_describe_token(token.token_id) or may_describe_owner(token.owner)
