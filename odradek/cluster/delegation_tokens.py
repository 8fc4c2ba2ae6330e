"""The cluster's delegation tokens (KIP-48), kept in the metadata store, and this broker's copy of them.

Enabled by `delegation.token.secret.key` (every broker of a cluster needs the same one: a token's
HMAC is computed from it, never stored). Tokens live in the metadata store in Kafka's ZooKeeper
layout (`/delegation_token/tokens/<id>`), so a token made on one broker logs in on every other;
changes reach the others through /delegation_token/token_changes. This broker's copy is replaced
whole on each change, so a login on the event loop never sees half of one. Writes block
(ZooKeeper): call create, renew, expire and remove_expired through the controller's `run`.

Expired tokens stop logging in at once and are removed from the store every
`delegation.token.expiry.check.interval.ms`.
"""

from __future__ import annotations

import logging

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.security.delegation_token import TokenInfo, new_token_id, token_credential, token_hmac
from odradek.security.scram import ScramCredential
from odradek.security.tls import secret_text

log = logging.getLogger(__name__)


def secret_key(config) -> bytes | None:
    """delegation.token.secret.key (or its old name, delegation.token.master.key) as bytes; None: tokens are off."""
    for name in ("delegation.token.secret.key", "delegation.token.master.key"):
        text = secret_text(config[name])
        if text:
            return text.encode("utf-8")
    return None


class DelegationTokens:
    def __init__(self, store, config, clock) -> None:
        self.store = store
        self.clock = clock
        self._key = secret_key(config)
        self.max_lifetime_ms = int(config["delegation.token.max.lifetime.ms"])
        self.default_renew_ms = int(config["delegation.token.expiry.time.ms"])
        self._tokens: dict[str, TokenInfo] = {}
        self._by_hmac: dict[bytes, str] = {}
        self._credentials: dict[tuple[str, str], ScramCredential] = {}  # by (token id, mechanism), made at a first login
        if self.enabled:
            self.reload()

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def reload(self) -> None:
        """Read every token from the store again and swap this broker's copy (blocking)."""
        tokens = {}
        for token_id, stored in self.store.delegation_tokens().items():
            try:
                tokens[token_id] = TokenInfo.from_stored(stored)
            except ValueError as error:
                log.warning("Skipping delegation token %s: %s", token_id, error)
        self._swap(tokens)

    def _swap(self, tokens: dict[str, TokenInfo]) -> None:
        self._by_hmac = {self.hmac(token_id): token_id for token_id in tokens}
        self._credentials = {key: found for key, found in self._credentials.items() if key[0] in tokens}
        self._tokens = tokens

    def _write(self, token: TokenInfo | None, token_id: str) -> None:
        self.store.set_delegation_token(token_id, token.to_stored() if token is not None else None)
        tokens = dict(self._tokens)
        if token is None:
            tokens.pop(token_id, None)
        else:
            tokens[token_id] = token
        self._swap(tokens)

    def hmac(self, token_id: str) -> bytes:
        assert self._key is not None
        return token_hmac(token_id, self._key)

    def tokens(self) -> list[TokenInfo]:
        return list(self._tokens.values())

    # -- the requests (blocking) ---------------------------------------------------------------------

    def create(self, owner: str, requester: str, renewers: tuple[str, ...], max_lifetime_ms: int) -> TokenInfo:
        self._check_enabled()
        now = self.clock.now_ms()
        lifetime = self.max_lifetime_ms if max_lifetime_ms <= 0 else min(max_lifetime_ms, self.max_lifetime_ms)
        token = TokenInfo(new_token_id(), owner, requester, renewers, now, now + lifetime,
                          min(now + lifetime, now + self.default_renew_ms))
        self._write(token, token.token_id)
        log.info("Created delegation token %s for %s", token.token_id, owner)
        return token

    def renew(self, principal: str, hmac: bytes, period_ms: int) -> int:
        """The token's new expiry time: now + period_ms (the default renew time when negative),
        never past its max lifetime."""
        token = self._token_for(principal, hmac)
        now = self.clock.now_ms()
        if token.expired(now):
            raise KafkaError(ErrorCode.delegation_token_expired, "Delegation Token is expired.")
        renewed = token.with_expiry(now + (self.default_renew_ms if period_ms < 0 else period_ms))
        self._write(renewed, token.token_id)
        log.info("Renewed delegation token %s of %s", token.token_id, token.owner)
        return renewed.expiry_ms

    def expire(self, principal: str, hmac: bytes, period_ms: int) -> int:
        """A negative period ends the token now (it is removed); otherwise it expires in
        period_ms, never past its max lifetime. The new expiry time."""
        token = self._token_for(principal, hmac)
        now = self.clock.now_ms()
        if period_ms < 0:
            self._write(None, token.token_id)
            log.info("Expired delegation token %s of %s", token.token_id, token.owner)
            return now
        if token.expired(now):
            raise KafkaError(ErrorCode.delegation_token_expired, "Delegation Token is expired.")
        shortened = token.with_expiry(now + period_ms)
        self._write(shortened, token.token_id)
        return shortened.expiry_ms

    def remove_expired(self) -> None:
        """Remove the tokens past their expiry or max lifetime from the store."""
        now = self.clock.now_ms()
        for token in self.tokens():
            if token.expired(now):
                log.info("Delegation token %s of %s expired; removed", token.token_id, token.owner)
                self._write(None, token.token_id)

    def _token_for(self, principal: str, hmac: bytes) -> TokenInfo:
        self._check_enabled()
        token_id = self._by_hmac.get(bytes(hmac))
        token = self._tokens.get(token_id) if token_id is not None else None
        if token is None:
            raise KafkaError(ErrorCode.delegation_token_not_found, "Delegation Token is not found on server.")
        if not token.owner_or_renewer(principal):
            raise KafkaError(ErrorCode.delegation_token_owner_mismatch,
                             "Specified Principal is not valid Owner/Renewer.")
        return token

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise KafkaError(ErrorCode.delegation_token_auth_disabled, "Delegation Token feature is not enabled.")

    # -- logins (on the event loop) ----------------------------------------------------------------

    def login(self, token_id: str, mechanism: str) -> tuple[str, ScramCredential, int] | None:
        """(owner, SCRAM credential, expiry time) of a token that may log in now; None otherwise."""
        token = self._tokens.get(token_id)
        if token is None or token.expired(self.clock.now_ms()):
            return None
        credential = self._credentials.get((token_id, mechanism))
        if credential is None:
            credential = token_credential(self.hmac(token_id), mechanism)
            # a new dict, never one changed in place: _swap may be reading the old one in a worker thread
            self._credentials = {**self._credentials, (token_id, mechanism): credential}
        return token.owner, credential, token.expiry_ms
