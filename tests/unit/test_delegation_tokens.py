"""Delegation tokens: their lifetimes, who may renew and expire them, what survives a restart, and
logging in with one over SCRAM (the exchange a Kafka client with tokenauth=true makes)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from odradek.clock import FakeClock
from odradek.cluster.delegation_tokens import DelegationTokens
from odradek.cluster.local_store import LocalMetadataStore
from odradek.config import BrokerConfig
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.security.delegation_token import TokenInfo, describable
from odradek.security.sasl import SaslAuthenticationFailed
from odradek.security.scram import ScramClient, ScramServer

HOUR = 3_600_000
DAY = 24 * HOUR
SECRET = "a shared secret"


def config(**props: str) -> BrokerConfig:
    settings = {"delegation.token.secret.key": SECRET, **{k.replace("_", "."): v for k, v in props.items()}}
    return BrokerConfig.from_properties(settings)[0]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tokens(tmp_path, clock) -> DelegationTokens:
    return DelegationTokens(LocalMetadataStore(tmp_path), config(), clock)


def error_of(call, *args) -> ErrorCode:
    with pytest.raises(KafkaError) as raised:
        call(*args)
    return raised.value.code


def test_a_token_lives_a_day_and_at_most_its_max_lifetime(tokens, clock):
    token = tokens.create("User:alice", "User:alice", (), -1)
    now = clock.now_ms()
    assert (token.issue_ms, token.expiry_ms, token.max_ms) == (now, now + DAY, now + 7 * DAY)
    assert tokens.hmac(token.token_id) == hmac.digest(SECRET.encode(), token.token_id.encode(), hashlib.sha512)

    short = tokens.create("User:alice", "User:alice", (), HOUR)
    assert (short.expiry_ms, short.max_ms) == (now + HOUR, now + HOUR)
    capped = tokens.create("User:alice", "User:alice", (), 30 * DAY)
    assert capped.max_ms == now + 7 * DAY


def test_the_owner_and_renewers_renew_and_nobody_else(tokens, clock):
    token = tokens.create("User:alice", "User:alice", ("User:bob",), -1)
    secret = tokens.hmac(token.token_id)
    clock.advance(HOUR)
    assert tokens.renew("User:bob", secret, 2 * DAY) == clock.now_ms() + 2 * DAY
    assert tokens.renew("User:alice", secret, -1) == clock.now_ms() + DAY
    assert error_of(tokens.renew, "User:mallory", secret, DAY) == ErrorCode.delegation_token_owner_mismatch
    assert error_of(tokens.renew, "User:alice", b"not a token's hmac", DAY) == ErrorCode.delegation_token_not_found
    # never past the max lifetime, however long the period asked for
    assert tokens.renew("User:alice", secret, 30 * DAY) == token.max_ms
    clock.advance(7 * DAY)
    assert error_of(tokens.renew, "User:alice", secret, DAY) == ErrorCode.delegation_token_expired


def test_expiring_now_removes_the_token_and_its_logins(tokens, clock):
    token = tokens.create("User:alice", "User:alice", (), -1)
    secret = tokens.hmac(token.token_id)
    assert tokens.login(token.token_id, "SCRAM-SHA-256") is not None
    assert tokens.expire("User:alice", secret, HOUR) == clock.now_ms() + HOUR
    assert tokens.expire("User:alice", secret, -1) == clock.now_ms()
    assert tokens.tokens() == [] and tokens.store.delegation_tokens() == {}
    assert tokens.login(token.token_id, "SCRAM-SHA-256") is None
    assert error_of(tokens.expire, "User:alice", secret, -1) == ErrorCode.delegation_token_not_found


def test_an_expired_token_stops_logging_in_at_once_and_is_removed_by_the_check(tokens, clock):
    token = tokens.create("User:alice", "User:alice", (), HOUR)
    clock.advance(HOUR + 1)
    assert tokens.login(token.token_id, "SCRAM-SHA-512") is None
    assert [t.token_id for t in tokens.tokens()] == [token.token_id]  # until the periodic check
    tokens.remove_expired()
    assert tokens.tokens() == [] and tokens.store.delegation_tokens() == {}


def test_tokens_survive_a_restart_with_the_same_secrets(tmp_path, clock):
    first = DelegationTokens(LocalMetadataStore(tmp_path), config(), clock)
    token = first.create("User:alice", "User:admin", ("User:bob",), -1)
    again = DelegationTokens(LocalMetadataStore(tmp_path), config(), clock)
    assert again.tokens() == [token]
    assert again.hmac(token.token_id) == first.hmac(token.token_id)
    assert again.renew("User:bob", first.hmac(token.token_id), HOUR) == clock.now_ms() + HOUR


def test_without_a_secret_key_tokens_are_disabled(tmp_path, clock):
    disabled = DelegationTokens(LocalMetadataStore(tmp_path), BrokerConfig.from_properties({})[0], clock)
    assert not disabled.enabled
    assert error_of(disabled.create, "User:alice", "User:alice", (), -1) == ErrorCode.delegation_token_auth_disabled
    assert disabled.login("anything", "SCRAM-SHA-256") is None
    old_name = DelegationTokens(LocalMetadataStore(tmp_path), BrokerConfig.from_properties(
        {"delegation.token.master.key": SECRET})[0], clock)
    assert old_name.enabled


def test_stored_as_kafka_stores_it_in_zookeeper():
    token = TokenInfo("Wkl8Oe7pQyC4Q1VzBFW7Rg", "User:alice smith", "User:admin", ("User:bob",), 1, 2, 3)
    assert token.to_stored() == {
        "version": 3, "owner": "User%3Aalice%20smith", "tokenRequester": "User%3Aadmin", "renewers": ["User%3Abob"],
        "issueTimestamp": 1, "maxTimestamp": 2, "expiryTimestamp": 3, "tokenId": "Wkl8Oe7pQyC4Q1VzBFW7Rg"}
    assert TokenInfo.from_stored(token.to_stored()) == token
    version_1 = {key: value for key, value in token.to_stored().items() if key != "tokenRequester"} | {"version": 1}
    assert TokenInfo.from_stored(version_1).requester == "User:alice smith"
    with pytest.raises(ValueError):
        TokenInfo.from_stored({"version": 9})


def test_who_sees_a_token_in_describe():
    token = TokenInfo("t", "User:alice", "User:alice", ("User:bob",), 1, 2, 3)
    never = lambda _name: False  # noqa: E731 - the ACLs allow nothing
    assert describable(token, "User:alice", None, never, never)
    assert describable(token, "User:bob", None, never, never)
    assert not describable(token, "User:carol", None, never, never)
    assert describable(token, "User:carol", None, lambda token_id: token_id == "t", never)
    assert describable(token, "User:carol", None, never, lambda owner: owner == "User:alice")
    assert describable(token, "User:alice", ["User:bob"], never, never)  # a renewer's tokens count for it
    assert not describable(token, "User:alice", ["User:carol"], never, never)


def _login(server: ScramServer, client: ScramClient) -> None:
    server_first = server.evaluate(client.first_message())
    client.verify_final(server.evaluate(client.final_message(server_first)))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_client_logs_in_with_a_token_as_its_owner(tokens, mechanism):
    token = tokens.create("User:alice", "User:alice", (), -1)
    password = base64.b64encode(tokens.hmac(token.token_id)).decode()
    server = ScramServer(mechanism, lambda _user: None, tokens.login)
    _login(server, ScramClient(mechanism, token.token_id, password, token=True))
    assert server.complete and server.principal == "User:alice" and server.token_authenticated
    assert server.credential_expiry_ms == token.expiry_ms

    wrong = ScramServer(mechanism, lambda _user: None, tokens.login)
    with pytest.raises(SaslAuthenticationFailed, match="invalid credentials"):
        _login(wrong, ScramClient(mechanism, token.token_id, "bm90IHRoZSBobWFj", token=True))
    # without tokenauth=true the token id is just an unknown user name
    plain = ScramServer(mechanism, lambda _user: None, tokens.login)
    with pytest.raises(SaslAuthenticationFailed, match="invalid credentials"):
        _login(plain, ScramClient(mechanism, token.token_id, password))


def test_a_token_session_ends_with_the_token_when_sessions_have_a_lifetime(tokens, clock):
    """With connections.max.reauth.ms, Kafka ends a token's session when the token expires; the
    connection is marked token-authenticated, so it may not ask for tokens."""
    from odradek.security.session import Session

    token = tokens.create("User:alice", "User:alice", (), 10 * 60_000)
    mechanisms = {"SCRAM-SHA-256": lambda: ScramServer("SCRAM-SHA-256", lambda _user: None, tokens.login)}
    session = Session(mechanisms=mechanisms, reauth_ms=HOUR, now_ms=clock.now_ms)
    assert session.handshake("SCRAM-SHA-256", 1) is None
    client = ScramClient("SCRAM-SHA-256", token.token_id, base64.b64encode(tokens.hmac(token.token_id)).decode(),
                         token=True)
    client.verify_final(session.authenticate(client.final_message(session.authenticate(client.first_message()))))
    assert session.authenticated and session.principal == "User:alice" and session.token_authenticated
    assert session.expires_at_ms == token.expiry_ms == clock.now_ms() + 10 * 60_000
