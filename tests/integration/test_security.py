"""TLS and SASL with the three Python clients: what a team securing its cluster does and sees.

One broker serves four listeners: PLAINTEXT (for setting up users; ACLs do not exist yet),
SASL_SSL (SCRAM-SHA-512 and PLAIN), SSL with client certificates required, and SASL_PLAINTEXT
(PLAIN). Every client produces, consumes in a group and uses admin on each secured listener; wrong
passwords, unknown users and mechanisms, requests before authentication and garbage instead of a
TLS hello get Kafka's answer and a closed connection, with one log line and no secret in it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import uuid
from pathlib import Path

import confluent_kafka
import pytest
from cryptography import x509
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kio.schema.alter_user_scram_credentials.v0.request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

from conftest import BrokerProcess, free_port
from odradek.protocol.errors import ErrorCode
from tls_material import STORE_PASSWORD, make_tls_material

from .group_clients import finish_orphaned_kafka_python_join
from .wire import WireClient

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_alice="alice-plain-secret" user_admin="admin-plain-secret";')
SCRAM_PASSWORD = "bob-scram-secret"
CLIENTS = ["confluent", "kafka-python", "aiokafka"]


class SecureBroker:
    def __init__(self, process: BrokerProcess, ports: dict[str, int], tls, client_identity) -> None:
        self.process, self.ports, self.tls, self.client_identity = process, ports, tls, client_identity

    def address(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"


@pytest.fixture(scope="module")
def secure(tmp_path_factory) -> SecureBroker:
    directory = tmp_path_factory.mktemp("secure")
    tls = make_tls_material(directory / "tls")
    carol = tls.client("carol", directory / "tls")
    ports = {name: free_port() for name in ("SASL_SSL", "SSL", "SASL_PLAINTEXT")}
    process = BrokerProcess(directory, {
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(tls.broker.pkcs12),
        "ssl.keystore.password": STORE_PASSWORD,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.ca_pem),
        "listener.name.ssl.ssl.client.auth": "required",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.replication.factor": "1",
    })
    process.overrides["listeners"] = ",".join(
        [f"PLAINTEXT://127.0.0.1:{process.port}"] + [f"{name}://127.0.0.1:{port}" for name, port in ports.items()])
    process.start()
    broker = SecureBroker(process, ports, tls, carol)
    try:
        upsert = UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                              SCRAM_PASSWORD.encode())
        admin = AdminClient({"bootstrap.servers": process.bootstrap_servers})
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)
    except BaseException:
        process.stop()  # a failed setup must not leave the broker running
        raise
    yield broker
    assert process.stop() == 0, process.output()


# -- each client's settings for each listener -----------------------------------------------------

def _settings(client: str, broker: SecureBroker, listener: str, password: str | None = None) -> dict:
    tls = broker.tls
    if listener == "SASL_SSL":
        mechanism, user, secret = "SCRAM-SHA-512", "bob", password or SCRAM_PASSWORD
    elif listener == "SASL_PLAINTEXT":
        mechanism, user, secret = "PLAIN", "alice", password or "alice-plain-secret"
    else:
        mechanism = user = secret = None
    if client == "confluent":
        settings = {"bootstrap.servers": broker.address(listener), "security.protocol": listener}
        if mechanism:
            settings.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": secret})
        if "SSL" in listener:
            settings["ssl.ca.location"] = str(tls.ca_pem)
        if listener == "SSL":
            settings.update({"ssl.certificate.location": str(broker.client_identity.certificate_pem),
                             "ssl.key.location": str(broker.client_identity.key_pem)})
        return settings
    settings = {"bootstrap_servers": broker.address(listener), "security_protocol": listener}
    if mechanism:
        settings.update({"sasl_mechanism": mechanism, "sasl_plain_username": user, "sasl_plain_password": secret})
    if "SSL" in listener:
        context = ssl.create_default_context(cafile=str(tls.ca_pem))
        if listener == "SSL":
            context.load_cert_chain(str(broker.client_identity.certificate_pem), str(broker.client_identity.key_pem))
        settings["ssl_context"] = context
    return settings


def _round_trip(client: str, broker: SecureBroker, listener: str) -> list[bytes]:
    """Create a topic with admin, produce 20 records, read them back in a consumer group."""
    topic, group = f"secure-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    values = [f"{client}-{listener}-{i}".encode() for i in range(20)]
    settings = _settings(client, broker, listener)
    if client == "confluent":
        admin = AdminClient(settings)
        for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
            future.result(timeout=30)
        producer = confluent_kafka.Producer(settings)
        for value in values:
            producer.produce(topic, value)
        assert producer.flush(30) == 0
        consumer = confluent_kafka.Consumer({**settings, "group.id": group, "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        seen, deadline = [], time.monotonic() + 30
        while len(seen) < len(values) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.append(message.value())
        consumer.commit(asynchronous=False)
        consumer.close()
        return seen
    if client == "kafka-python":
        import kafka
        from kafka.admin import KafkaAdminClient, NewTopic as KafkaNewTopic

        admin = KafkaAdminClient(**settings)
        admin.create_topics([KafkaNewTopic(topic, 2, 1)])
        admin.close()
        producer = kafka.KafkaProducer(**settings)
        for value in values:
            producer.send(topic, value)
        producer.flush(30)
        producer.close()
        consumer = kafka.KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", **settings)
        seen = []
        deadline = time.monotonic() + 20
        while len(seen) < len(values) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200, max_records=len(values) - len(seen)).values():
                seen.extend(message.value for message in batch)
            finish_orphaned_kafka_python_join(consumer)
        consumer.commit()
        consumer.close()
        return seen
    return asyncio.run(_aiokafka_round_trip(settings, topic, group, values))


async def _aiokafka_round_trip(settings: dict, topic: str, group: str, values: list[bytes]) -> list[bytes]:
    import aiokafka
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic as AioNewTopic

    admin = AIOKafkaAdminClient(**settings)
    await admin.start()
    try:
        await admin.create_topics([AioNewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = aiokafka.AIOKafkaProducer(**settings)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = aiokafka.AIOKafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", **settings)
    await consumer.start()
    seen = []
    try:
        async with asyncio.timeout(30):
            async for message in consumer:
                seen.append(message.value)
                if len(seen) == len(values):
                    break
        await consumer.commit()
    finally:
        await consumer.stop()
    return seen


@pytest.mark.parametrize("listener", ["SASL_SSL", "SSL", "SASL_PLAINTEXT"])
@pytest.mark.parametrize("client", CLIENTS)
def test_client_produces_consumes_in_a_group_and_administers_over_a_secured_listener(secure, client, listener):
    seen = _round_trip(client, secure, listener)
    assert sorted(seen) == sorted(f"{client}-{listener}-{i}".encode() for i in range(20))


# -- refusals --------------------------------------------------------------------------------------

def _librdkafka_error(settings: dict) -> str:
    """The errors a librdkafka client reports while it fails to connect (it never succeeds)."""
    errors: list[str] = []
    producer = confluent_kafka.Producer({**settings, "error_cb": lambda error: errors.append(str(error))})
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    with pytest.raises(confluent_kafka.KafkaException):
        producer.list_topics(timeout=1)
    return " ".join(errors)


@pytest.mark.parametrize("listener", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(secure, listener):
    wrong = _librdkafka_error(_settings("confluent", secure, listener, password="not-the-password"))
    unknown = _librdkafka_error({**_settings("confluent", secure, listener), "sasl.username": "mallory"})
    assert "Authentication failed" in wrong, wrong
    message = lambda text: text.split("Authentication failed", 1)[1].split("(after")[0]  # noqa: E731
    assert message(wrong) == message(unknown)
    logged = "\n".join(line for line in secure.process.output().splitlines() if not line.startswith("--- "))  # not the command
    for secret in ("not-the-password", SCRAM_PASSWORD, "alice-plain-secret", STORE_PASSWORD):
        assert secret not in logged
    assert "Traceback" not in logged


def test_a_client_without_a_certificate_is_refused_on_a_mutual_tls_listener(secure):
    settings = {"bootstrap.servers": secure.address("SSL"), "security.protocol": "SSL", "ssl.ca.location": str(secure.tls.ca_pem)}
    _librdkafka_error(settings)
    assert "Failed authentication with 127.0.0.1" in secure.process.output()


def test_a_client_without_a_certificate_is_told_so_by_the_tls_alert(secure):
    """Kafka's broker sends the alert (certificate_required under TLS 1.3), so a client knows the
    refusal is final: the Java client stops at once with SslAuthenticationException where a bare
    closed socket makes it retry until its timeout."""
    context = ssl.create_default_context(cafile=str(secure.tls.ca_pem))
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=15) as raw:
        with context.wrap_socket(raw) as tls:  # TLS 1.3: the server checks the client's certificate after this
            with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
                tls.recv(1)


def test_garbage_instead_of_a_tls_hello_is_closed_with_a_log_line(secure):
    with socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=15) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: broker\r\n\r\n")
        assert sock.recv(100) == b""
    time.sleep(0.2)
    assert "SSL handshake failed" in secure.process.output()
    assert secure.process.running


def test_a_forged_record_after_the_handshake_closes_only_that_connection(secure):
    """Bytes that are not a record of the session (a forged or corrupted TLS record) end that
    connection with one alert; the broker logs no traceback and serves the next client."""
    context = ssl.create_default_context(cafile=str(secure.tls.ca_pem))
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", secure.ports["SASL_SSL"]), timeout=15) as raw:
        with context.wrap_socket(raw) as tls:
            with socket.socket(fileno=os.dup(tls.fileno())) as under:
                under.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))  # application data no key wrote
            with pytest.raises((ssl.SSLError, ConnectionError)):
                if tls.recv(1) == b"":
                    raise ConnectionResetError("closed")
    time.sleep(0.2)
    assert secure.process.running
    output = secure.process.output()
    assert "Traceback" not in output
    assert "Closing TLS connection from 127.0.0.1" in output and "a record it sent was rejected" in output
    assert sorted(_round_trip("confluent", secure, "SASL_SSL")) == sorted(f"confluent-SASL_SSL-{i}".encode() for i in range(20))


def _handshake(broker: SecureBroker, mechanism: str) -> tuple[WireClient, object]:
    wire = WireClient(broker.address("SASL_PLAINTEXT"))
    return wire, wire.request(17, 1, SaslHandshakeRequest(mechanism=mechanism))


def test_an_unknown_mechanism_is_answered_with_the_offered_ones_then_closed(secure):
    wire, response = _handshake(secure, "GSSAPI")
    assert response.error_code == ErrorCode.unsupported_sasl_mechanism
    assert list(response.mechanisms) == ["PLAIN"]
    assert wire.is_closed(5)


def test_a_request_before_authentication_closes_the_connection(secure):
    wire = WireClient(secure.address("SASL_PLAINTEXT"))
    versions = wire.request(18, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    assert versions.error_code == ErrorCode.none  # ApiVersions is served before authentication
    wire.send_raw(_frame(3, 12, MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                                include_topic_authorized_operations=False)))
    assert wire.is_closed(5)
    assert "before completing SASL authentication" in secure.process.output()


def test_a_failed_plain_login_is_answered_then_closed(secure):
    wire, response = _handshake(secure, "PLAIN")
    assert response.error_code == ErrorCode.none
    failed = wire.request(36, 2, SaslAuthenticateRequest(auth_bytes=b"\0alice\0wrong"))
    assert failed.error_code == ErrorCode.sasl_authentication_failed
    assert failed.error_message == "Authentication failed: Invalid username or password"
    assert wire.is_closed(5)


def test_a_large_frame_before_authentication_closes_the_connection(secure):
    wire = WireClient(secure.address("SASL_PLAINTEXT"))
    wire.send_raw((10 * 1024 * 1024).to_bytes(4, "big") + b"\0" * 1024)
    assert wire.is_closed(5)
    assert "larger than sasl.server.max.receive.size" in secure.process.output()


def test_sasl_handshake_on_a_plaintext_listener_is_an_illegal_state(secure):
    wire = WireClient(secure.process.bootstrap_servers)
    response = wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))
    assert response.error_code == ErrorCode.illegal_sasl_state


def _frame(api_key: int, version: int, request) -> bytes:
    from .wire import encode_request

    return encode_request(request, 99, version=version)


# -- SCRAM credentials -----------------------------------------------------------------------------

def test_scram_credentials_are_described_altered_and_deleted_with_kafkas_errors(secure):
    admin = AdminClient({"bootstrap.servers": secure.process.bootstrap_servers})
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(timeout=30)
    assert [(info.mechanism, info.iterations) for info in described.scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_512, 8192)]

    wire = WireClient(secure.process.bootstrap_servers)
    too_few = ScramCredentialUpsertion(name="dave", mechanism=2, iterations=100, salt=b"salt", salted_password=b"x" * 64)
    unknown = ScramCredentialUpsertion(name="erin", mechanism=0, iterations=4096, salt=b"salt", salted_password=b"x" * 64)
    twice = ScramCredentialUpsertion(name="frank", mechanism=1, iterations=4096, salt=b"salt", salted_password=b"x" * 32)
    response = wire.request(51, 0, AlterUserScramCredentialsRequest(
        deletions=(ScramCredentialDeletion(name="nobody", mechanism=1), ScramCredentialDeletion(name="frank", mechanism=1)),
        upsertions=(too_few, unknown, twice),
    ))
    errors = {result.user: result.error_code for result in response.results}
    assert errors == {
        "nobody": ErrorCode.resource_not_found,
        "frank": ErrorCode.duplicate_resource,
        "dave": ErrorCode.unacceptable_credential,
        "erin": ErrorCode.unsupported_sasl_mechanism,
    }
    with pytest.raises(confluent_kafka.KafkaException):
        admin.describe_user_scram_credentials(["dave"])["dave"].result(timeout=30)

    upsert = UserScramCredentialUpsertion("grace", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"grace-secret")
    admin.alter_user_scram_credentials([upsert])["grace"].result(timeout=30)
    login = {**_settings("confluent", secure, "SASL_SSL"), "sasl.mechanism": "SCRAM-SHA-256",
             "sasl.username": "grace", "sasl.password": "grace-secret"}
    assert AdminClient(login).list_topics(timeout=10).brokers
    admin.alter_user_scram_credentials([UserScramCredentialDeletion("grace", ScramMechanism.SCRAM_SHA_256)])["grace"].result(timeout=30)
    assert "Authentication failed" in _librdkafka_error(login)


def test_scram_credentials_survive_a_restart(start_broker, tmp_path):
    port = free_port()
    broker = start_broker(**{"sasl.enabled.mechanisms": "SCRAM-SHA-256"})
    broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{port}"
    broker.stop()
    broker.start()
    upsert = UserScramCredentialUpsertion("heidi", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"heidi-secret")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.alter_user_scram_credentials([upsert])["heidi"].result(timeout=30)
    broker.stop()
    broker.start()
    login = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
             "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "heidi", "sasl.password": "heidi-secret"}
    assert AdminClient(login).list_topics(timeout=10).brokers


# -- configuration mistakes --------------------------------------------------------------------------

def _refused(tmp_path: Path, settings: dict[str, str]) -> str:
    import subprocess
    import sys

    command = [sys.executable, "-m", "odradek", "server", "--override", f"log.dirs={tmp_path / 'data'}"]
    for key, value in settings.items():
        command += ["--override", f"{key}={value}"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    return finished.stdout + finished.stderr


def test_a_sasl_listener_with_kafkas_default_mechanism_is_refused_in_one_line(tmp_path):
    output = _refused(tmp_path, {"listeners": f"SASL_PLAINTEXT://127.0.0.1:{free_port()}"})
    assert "GSSAPI" in output and "Traceback" not in output


def test_a_wrong_keystore_password_is_refused_without_showing_it(tmp_path):
    tls = make_tls_material(tmp_path / "tls")
    output = _refused(tmp_path, {"listeners": f"SSL://127.0.0.1:{free_port()}", "ssl.keystore.type": "PKCS12",
                                 "ssl.keystore.location": str(tls.broker.pkcs12), "ssl.keystore.password": "guess-123"})
    assert "ssl.keystore.password" in output and "guess-123" not in output and "Traceback" not in output


def test_the_cli_reaches_a_sasl_ssl_listener_with_kafkas_client_properties(secure, tmp_path):
    import subprocess
    import sys

    def properties(password: str) -> Path:
        path = tmp_path / f"client-{password}.properties"
        path.write_text(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="bob" password="{password}";\n'
            f"ssl.truststore.type=PEM\nssl.truststore.location={secure.tls.ca_pem}\n")
        return path

    def topics(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "odradek", "topics", "--bootstrap-server", secure.address("SASL_SSL"),
                               *args], capture_output=True, text=True, timeout=60)

    created = topics("--command-config", str(properties(SCRAM_PASSWORD)), "--create", "--topic", "from-the-cli", "--partitions", "3")
    assert created.returncode == 0, created.stderr
    listed = topics("--command-config", str(properties(SCRAM_PASSWORD)), "--list")
    assert "from-the-cli" in listed.stdout.split()
    refused = topics("--command-config", str(properties("wrong-password")), "--list")
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "Authentication failed" in refused.stderr
    assert "wrong-password" not in refused.stderr


def test_the_cli_hands_out_a_delegation_token_that_a_job_logs_in_with_until_it_is_expired(tmp_path):
    """KIP-48 with odradek's CLI: alice, logged in with SCRAM, gets a token; a job logs in with it
    (tokenauth) as alice, also after a restart, but may not ask for tokens itself; once alice
    expires it, it logs in no more. On the PLAINTEXT listener nobody gets a token."""
    import json
    import subprocess
    import sys

    port = free_port()
    process = BrokerProcess(tmp_path / "broker", {"sasl.enabled.mechanisms": "SCRAM-SHA-512",
                                                  "delegation.token.secret.key": "the token secret"})
    process.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{process.port},SASL_PLAINTEXT://127.0.0.1:{port}"
    process.start()

    def odradek(command: str, *args: str, bootstrap: str = f"127.0.0.1:{port}", stdin: str | None = None):
        return subprocess.run([sys.executable, "-m", "odradek", command, "--bootstrap-server", bootstrap, *args],
                              capture_output=True, text=True, timeout=60, input=stdin)

    def properties(name: str, user: str, password: str, token: bool = False) -> str:
        path = tmp_path / f"{name}.properties"
        path.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
                        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                        f'username="{user}" password="{password}"' + (' tokenauth="true"' if token else "") + ";\n")
        return str(path)

    try:
        added = odradek("users", "--add", "alice", "--password-stdin", bootstrap=process.bootstrap_servers,
                        stdin="alice-secret\n")
        assert added.returncode == 0, added.stderr
        alice = properties("alice", "alice", "alice-secret")
        created = odradek("delegation-tokens", "--command-config", alice, "--create", "--renewer-principal", "User:bob",
                          "--output", "json")
        assert created.returncode == 0, created.stderr
        [token] = json.loads(created.stdout)
        assert (token["owner"], token["requester"], token["renewers"]) == ("User:alice", "User:alice", ["User:bob"])
        assert token["expires"] - token["issued"] == 86_400_000 and token["max"] - token["issued"] == 7 * 86_400_000

        job = properties("job", token["token_id"], token["hmac"], token=True)
        made = odradek("topics", "--command-config", job, "--create", "--topic", "by-the-job")
        assert made.returncode == 0, made.stderr
        asked = odradek("delegation-tokens", "--command-config", job, "--describe")
        assert asked.returncode == 1 and "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED" in asked.stderr, asked.stderr

        assert process.stop() == 0, process.output()
        process.start()
        listed = odradek("topics", "--command-config", job, "--list")
        assert listed.returncode == 0 and "by-the-job" in listed.stdout.split(), listed.stderr

        # bad input: an HMAC that is not base64, and one of no token
        garbled = odradek("delegation-tokens", "--command-config", alice, "--renew", "--hmac", "not base64!")
        assert garbled.returncode == 2 and "--hmac must be the base64 HMAC" in garbled.stderr, garbled.stderr
        unknown = odradek("delegation-tokens", "--command-config", alice, "--renew", "--hmac", "bm8gc3VjaCB0b2tlbg==")
        assert unknown.returncode == 1 and "DELEGATION_TOKEN_NOT_FOUND" in unknown.stderr, unknown.stderr
        assert unknown.stderr.count("\n") == 1

        expired = odradek("delegation-tokens", "--command-config", alice, "--expire", "--hmac", token["hmac"])
        assert expired.returncode == 0 and expired.stdout.startswith("Expired the token"), expired.stderr
        late = odradek("topics", "--command-config", job, "--list")
        assert late.returncode == 1 and "Authentication failed" in late.stderr and late.stderr.count("\n") == 1
        described = odradek("delegation-tokens", "--command-config", alice, "--describe", "--output", "json")
        assert json.loads(described.stdout) == []

        refused = odradek("delegation-tokens", "--create", bootstrap=process.bootstrap_servers)
        assert refused.returncode == 1 and "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED" in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1
        assert "Traceback" not in process.output()
    finally:
        process.stop()


def test_sessions_re_authenticate_within_connections_max_reauth_ms(tmp_path):
    """KIP-368: librdkafka re-authenticates on the same connection before its session ends and keeps
    producing; a client that does not is disconnected at its next request after the end.
    librdkafka re-authenticates at 90% of the session, so the session is long enough that its 10%
    margin (300 ms) outlasts a loaded machine's queued produce responses."""
    port = free_port()
    process = BrokerProcess(tmp_path, {"sasl.enabled.mechanisms": "PLAIN", "connections.max.reauth.ms": "3000",
                                       "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS})
    process.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{process.port},SASL_PLAINTEXT://127.0.0.1:{port}"
    process.start()
    try:
        settings = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-plain-secret"}
        producer = confluent_kafka.Producer(settings)
        delivered = []
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            producer.produce("reauth", b"x", on_delivery=lambda error, message: delivered.append(error))
            producer.poll(0.1)
        assert producer.flush(15) == 0
        assert delivered and all(error is None for error in delivered)
        assert "SASL session expired" not in process.output()

        wire = WireClient(f"127.0.0.1:{port}")
        assert wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN")).error_code == ErrorCode.none
        answer = wire.request(36, 2, SaslAuthenticateRequest(auth_bytes=b"\0alice\0alice-plain-secret"))
        assert answer.error_code == ErrorCode.none and 0 < answer.session_lifetime.total_seconds() <= 3
        time.sleep(3.1)
        wire.send_raw(_frame(3, 12, MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                                    include_topic_authorized_operations=False)))
        assert wire.is_closed(5)
        assert "SASL session expired" in process.output()
    finally:
        assert process.stop() == 0, process.output()


# -- replacing a certificate while running -----------------------------------------------------------

def _served_certificate(port: int, ca: Path) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def _certificate_of(identity) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identity.certificate_pem.read_bytes())


def test_a_listeners_key_store_is_replaced_without_a_restart(tmp_path):
    """An operator renews the broker's certificate: kafka-configs (IncrementalAlterConfigs) points the
    SSL listener's key store at the new file, and new connections get the new certificate while a
    producer's open connection keeps working. A store that cannot be opened, or holds a certificate
    for another name, is refused with Kafka's message and changes nothing. The same location set
    again after the file was replaced on disk is re-read. The new password is stored encrypted with
    password.encoder.secret, and after a restart the broker serves the new store."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    tls = make_tls_material(tmp_path / "tls")
    port = free_port()
    process = BrokerProcess(tmp_path, {"ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(tls.broker.pkcs12),
                                       "ssl.keystore.password": STORE_PASSWORD, "password.encoder.secret": "encoder-secret"})
    process.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{process.port},SSL://127.0.0.1:{port}"
    process.start()
    try:
        admin = AdminClient({"bootstrap.servers": process.bootstrap_servers})

        def alter(**values: str) -> None:
            entries = [ConfigEntry(f"listener.name.ssl.{name.replace('_', '.')}", value,
                                   incremental_operation=AlterConfigOpType.SET) for name, value in values.items()]
            resource = ConfigResource(ResourceType.BROKER, "0", incremental_configs=entries)
            admin.incremental_alter_configs([resource])[resource].result(timeout=30)

        assert _served_certificate(port, tls.ca_pem) == _certificate_of(tls.broker)
        producer = confluent_kafka.Producer({"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SSL",
                                             "ssl.ca.location": str(tls.ca_pem)})
        producer.produce("renewal", b"before")
        assert producer.flush(15) == 0

        renewed = tls.server("broker", tmp_path / "renewed")
        alter(ssl_keystore_location=str(renewed.pkcs12), ssl_keystore_password=STORE_PASSWORD)
        assert _served_certificate(port, tls.ca_pem) == _certificate_of(renewed)
        producer.produce("renewal", b"after")
        assert producer.flush(15) == 0
        metadata_file = (tmp_path / "data" / "odradek-metadata.json").read_text()
        assert "listener.name.ssl.ssl.keystore.password" in metadata_file and STORE_PASSWORD not in metadata_file

        intruder = tls.server("intruder", tmp_path / "intruder")
        for values, message in (
            ({"ssl_keystore_password": "not-the-password"}, "Validation of dynamic config update of SSLFactory failed"),
            ({"ssl_keystore_location": str(tmp_path / "missing.p12")}, "cannot read ssl.keystore.location"),
            ({"ssl_keystore_location": str(intruder.pkcs12)}, "Keystore DistinguishedName or SubjectAltNames do not match"),
        ):
            with pytest.raises(confluent_kafka.KafkaException, match=message):
                alter(**values)
            assert _served_certificate(port, tls.ca_pem) == _certificate_of(renewed)
        assert "not-the-password" not in process.output()

        # renewed again in place: the same location, a new file
        again = tls.server("broker", tmp_path / "again")
        time.sleep(0.01)
        renewed.pkcs12.write_bytes(again.pkcs12.read_bytes())
        alter(ssl_keystore_location=str(renewed.pkcs12))
        assert _served_certificate(port, tls.ca_pem) == _certificate_of(again)
    finally:
        assert process.stop() == 0, process.output()
    process.start()
    try:
        assert _served_certificate(port, tls.ca_pem) == _certificate_of(again)
    finally:
        assert process.stop() == 0, process.output()


# -- OAUTHBEARER ------------------------------------------------------------------------------------

class TokenIssuer:
    """Signs JWTs with an RSA key whose public half is in a JWKS file, as an identity provider does."""

    def __init__(self, directory: Path, kid: str = "test-key") -> None:
        import base64
        import json

        from cryptography.hazmat.primitives.asymmetric import rsa

        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        b64 = lambda value: base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()  # noqa: E731
        self.jwks = directory / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                                                   "n": b64(numbers.n), "e": b64(numbers.e)}]}))

    def token(self, subject: str = "svc-orders", *, lifetime_s: int = 300, audience: str = "odradek",
              issuer: str = "https://idp.example", key=None, algorithm: str = "RS256") -> str:
        import base64
        import json

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
        now = int(time.time())
        header = b64(json.dumps({"alg": algorithm, "kid": self.kid, "typ": "JWT"}).encode())
        claims = b64(json.dumps({"sub": subject, "iss": issuer, "aud": audience, "iat": now,
                                 "exp": now + lifetime_s}).encode())
        if algorithm == "none":
            return f"{header}.{claims}."
        signature = (key or self.key).sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{claims}.{b64(signature)}"


@pytest.fixture(scope="module")
def oauth_broker(tmp_path_factory):
    directory = tmp_path_factory.mktemp("oauth")
    issuer = TokenIssuer(directory)
    port = free_port()
    process = BrokerProcess(directory, {
        "sasl.enabled.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url": issuer.jwks.as_uri(),
        "sasl.oauthbearer.expected.issuer": "https://idp.example",
        "sasl.oauthbearer.expected.audience": "odradek",
        "sasl.oauthbearer.clock.skew.seconds": "5",
        "group.initial.rebalance.delay.ms": "0",
    })
    process.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{process.port},SASL_PLAINTEXT://127.0.0.1:{port}"
    process.start()
    yield process, port, issuer
    assert process.stop() == 0, process.output()


def _oauth_settings(port: int, token: str) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "oauth_cb": lambda config: (token, time.time() + 300)}


def test_oauthbearer_accepts_a_token_signed_by_the_configured_jwks(oauth_broker):
    process, port, issuer = oauth_broker
    settings = _oauth_settings(port, issuer.token())
    admin = AdminClient(settings)
    admin.create_topics([NewTopic("oauth-topic", 1, 1)])["oauth-topic"].result(timeout=30)
    producer = confluent_kafka.Producer(settings)
    for i in range(5):
        producer.produce("oauth-topic", f"v{i}".encode())
    assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer({**settings, "group.id": "oauth-group", "auto.offset.reset": "earliest"})
    consumer.subscribe(["oauth-topic"])
    seen, deadline = [], time.monotonic() + 30
    while len(seen) < 5 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.append(message.value())
    consumer.close()
    assert seen == [f"v{i}".encode() for i in range(5)]


@pytest.mark.parametrize("problem", ["expired", "wrong audience", "wrong issuer", "another key", "unsigned", "garbage"])
def test_oauthbearer_refuses_a_token_kafka_would_refuse(oauth_broker, problem, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa

    process, port, issuer = oauth_broker
    token = {
        "expired": lambda: issuer.token(lifetime_s=-60),
        "wrong audience": lambda: issuer.token(audience="someone-else"),
        "wrong issuer": lambda: issuer.token(issuer="https://evil.example"),
        "another key": lambda: issuer.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "unsigned": lambda: issuer.token(algorithm="none"),
        "garbage": lambda: "not-a-jwt",
    }[problem]()
    errors = _librdkafka_error(_oauth_settings(port, token))
    assert "Authentication failed" in errors or "authentication" in errors.lower(), errors
    logged = process.output()
    assert token not in logged and "Traceback" not in logged
