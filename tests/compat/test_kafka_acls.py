"""ACLs with Kafka's own tools (4.x): what an operator who turns authorization on types and reads.

One broker (module-scoped) runs `authorizer.class.name=kafka.security.authorizer.AclAuthorizer`
with `super.users=User:admin` and the default `allow.everyone.if.no.acl.found=false`. It has the
harness's PLAINTEXT listener (principal User:ANONYMOUS, allowed nothing here; it only tells the
harness the broker is up) and a SASL_PLAINTEXT listener with PLAIN accounts for admin, alice and
bob, which every client below uses. As admin, the topics `orders`, `payroll` and `logs-app` are
created, and kafka-acls grants:

- alice READ, WRITE and DESCRIBE on the topic `orders`,
- alice READ on the group `billing`,
- bob WRITE on topics prefixed `logs-` (removed again by the kafka-acls test).

The tests check kafka-acls' --add/--list/--remove output, the console producer and consumer as
alice (allowed) and bob (refused: TopicAuthorizationException, nothing written, read back as admin
with confluent-kafka), a consumer group alice has no ACL for (GroupAuthorizationException),
kafka-topics --list as each user, and kafka-acls against a broker without an authorizer
(SECURITY_DISABLED).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BrokerProcess, describe_exit, free_port

from .conftest import run

ACL_COMMAND = "org.apache.kafka.tools.AclCommand"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
BROKER_JAAS = f"{PLAIN_LOGIN} required " + " ".join(f'user_{user}="{password}"' for user, password in PASSWORDS.items()) + ";"

ACL_BROKER_CONFIG = {
    "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
    "super.users": "User:admin",
    "allow.everyone.if.no.acl.found": "false",
    "sasl.enabled.mechanisms": "PLAIN",
    "listener.name.sasl_plaintext.plain.sasl.jaas.config": BROKER_JAAS,
    "group.initial.rebalance.delay.ms": "0",
}

TOPICS = ["orders", "payroll", "logs-app"]
ORDER_LINES = ["o-1:2 widgets", "o-2:1 gadget", "o-3:refund o-1"]

# A refusal must end a tool quickly: short client timeouts in every properties file, and a bound
# on each tool run (run() fails the test with the output when it is exceeded).
SHORT_CLIENT_TIMEOUTS = {"default.api.timeout.ms": 15_000, "request.timeout.ms": 10_000, "max.block.ms": 15_000}
TOOL_TIMEOUT_S = 60.0


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _write_properties(path: Path, settings: dict[str, object]) -> Path:
    """A Java client properties file, as handed to --command-config."""
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return path


def _java_login(user: str) -> dict[str, object]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": f'{PLAIN_LOGIN} required username="{user}" password="{PASSWORDS[user]}";',
        **SHORT_CLIENT_TIMEOUTS,
    }


def _librdkafka_login(bootstrap: str, user: str) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": PASSWORDS[user],
    }


# --- kafka-acls output ------------------------------------------------------------------------------

# `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`
_RESOURCE = re.compile(r"`ResourcePattern\(resourceType=(\w+), name=(.*), patternType=(\w+)\)`")
# (principal=User:alice, host=*, operation=READ, permissionType=ALLOW)
_ENTRY = re.compile(r"^\s*\(principal=(\S+), host=(\S+), operation=(\w+), permissionType=(\w+)\)\s*$")


def _acl_blocks(text: str, heading: str) -> dict[tuple[str, str, str], set[tuple[str, str, str, str]]]:
    """kafka-acls' blocks starting with `heading` ("Adding ACLs for resource", "Current ACLs for
    resource"): (resource type, name, pattern type) -> {(principal, host, operation, permission)}.
    Kafka prints them from hash sets, so neither blocks nor entries have an order."""
    blocks: dict[tuple[str, str, str], set[tuple[str, str, str, str]]] = {}
    current: set[tuple[str, str, str, str]] | None = None
    for line in text.splitlines():
        if line.startswith(heading):
            match = _RESOURCE.search(line)
            assert match, f"unexpected kafka-acls heading: {line!r}"
            current = blocks.setdefault(match.groups(), set())  # type: ignore[arg-type]
        elif (entry := _ENTRY.match(line)) and current is not None:
            current.add(entry.groups())  # type: ignore[arg-type]
        elif not line.strip():
            current = None
    return blocks


def _allow(principal: str, *operations: str) -> set[tuple[str, str, str, str]]:
    return {(principal, "*", operation, "ALLOW") for operation in operations}


ORDERS = ("TOPIC", "orders", "LITERAL")
BILLING = ("GROUP", "billing", "LITERAL")
LOGS_PREFIX = ("TOPIC", "logs-", "PREFIXED")

# What the operator grants, as kafka-acls arguments, and what it reports adding for each.
GRANTS = {
    ORDERS: (["--allow-principal", "User:alice", "--operation", "Read", "--operation", "Write",
              "--operation", "Describe", "--topic", "orders"], _allow("User:alice", "READ", "WRITE", "DESCRIBE")),
    BILLING: (["--allow-principal", "User:alice", "--operation", "Read", "--group", "billing"],
              _allow("User:alice", "READ")),
    LOGS_PREFIX: (["--allow-principal", "User:bob", "--operation", "Write", "--resource-pattern-type", "prefixed",
                   "--topic", "logs-"], _allow("User:bob", "WRITE")),
}


# --- the broker -------------------------------------------------------------------------------------


@dataclass
class AclBroker:
    process: BrokerProcess
    sasl_port: int
    properties: dict[str, Path]  # user -> --command-config file

    @property
    def bootstrap(self) -> str:
        """The SASL_PLAINTEXT listener every client here uses."""
        return f"127.0.0.1:{self.sasl_port}"

    def output(self) -> str:
        return self.process.output()


@pytest.fixture(scope="module")
def acl_broker_process(tmp_path_factory) -> AclBroker:
    """The module's broker with ACLs on; stopped at the end, where it must exit cleanly."""
    work_dir = tmp_path_factory.mktemp("acl-broker")
    process = BrokerProcess(work_dir, dict(ACL_BROKER_CONFIG))
    sasl_port = free_port()
    process.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{process.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
    properties = {user: _write_properties(work_dir / f"{user}.properties", _java_login(user)) for user in PASSWORDS}
    process.start()
    try:
        yield AclBroker(process, sasl_port, properties)
    finally:
        was_running = process.running
        exit_code = process.stop()
    if not was_running:
        pytest.fail(f"the ACL broker exited on its own with {describe_exit(exit_code)}:\n{process.output()}", pytrace=False)
    if exit_code != 0:
        pytest.fail(f"the ACL broker did not shut down cleanly on SIGTERM: {describe_exit(exit_code)}\n{process.output()}",
                    pytrace=False)


@pytest.fixture
def acl_broker(acl_broker_process: AclBroker, request) -> AclBroker:
    """The module's broker for one test: its log is attached to the test's report if it fails
    (tests/conftest.py's hook reads `_odradek_brokers`), and a broker that died fails at once."""
    brokers = getattr(request.node, "_odradek_brokers", None)
    if brokers is None:
        brokers = request.node._odradek_brokers = []
    brokers.append(acl_broker_process.process)
    if not acl_broker_process.process.running:
        pytest.fail(f"the ACL broker is not running:\n{acl_broker_process.output()}", pytrace=False)
    return acl_broker_process


def _kafka_acls(java_tools, broker: AclBroker, *args: object, user: str = "admin", **kwargs):
    return java_tools.run(ACL_COMMAND, "--bootstrap-server", broker.bootstrap, "--command-config",
                          broker.properties[user], *args, timeout_s=TOOL_TIMEOUT_S, **kwargs)


@pytest.fixture(scope="module")
def granted(acl_broker_process: AclBroker, java_tools) -> dict[tuple[str, str, str], str]:
    """As admin: the topics (CreateTopics over SASL_PLAINTEXT with confluent-kafka), then the
    operator's three `kafka-acls --add` commands. Returns what each --add printed."""
    broker = acl_broker_process
    admin = AdminClient(_librdkafka_login(broker.bootstrap, "admin"))
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1) for topic in TOPICS],
                                  operation_timeout=30, request_timeout=30)
    for future in futures.values():
        future.result(timeout=30)
    return {resource: _kafka_acls(java_tools, broker, "--add", *args).stdout
            for resource, (args, _entries) in GRANTS.items()}


# --- 1. kafka-acls ------------------------------------------------------------------------------------


def test_kafka_acls_adds_lists_and_removes(acl_broker, granted, java_tools):
    """kafka-acls as admin over SASL_PLAINTEXT: each --add reports the bindings it adds, --list
    shows them per resource pattern (literal and prefixed), --remove --force takes the prefixed one
    away and --list no longer shows it."""
    for resource, (_args, entries) in GRANTS.items():
        assert _acl_blocks(granted[resource], "Adding ACLs for resource") == {resource: entries}, granted[resource]

    listed = _kafka_acls(java_tools, acl_broker, "--list")
    assert _acl_blocks(listed.stdout, "Current ACLs for resource") == {
        resource: entries for resource, (_args, entries) in GRANTS.items()}, listed.stdout
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in listed.stdout
    assert ("Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=logs-, patternType=PREFIXED)`:"
            in listed.stdout), listed.stdout

    # --list for one resource shows only its bindings
    orders = _kafka_acls(java_tools, acl_broker, "--list", "--topic", "orders")
    assert _acl_blocks(orders.stdout, "Current ACLs for resource") == {ORDERS: GRANTS[ORDERS][1]}, orders.stdout

    removed = _kafka_acls(java_tools, acl_broker, "--remove", "--force", *GRANTS[LOGS_PREFIX][0])
    assert "Error" not in removed.stdout + removed.stderr, removed.stdout + removed.stderr

    after = _kafka_acls(java_tools, acl_broker, "--list")
    assert _acl_blocks(after.stdout, "Current ACLs for resource") == {
        ORDERS: GRANTS[ORDERS][1], BILLING: GRANTS[BILLING][1]}, after.stdout
    assert "logs-" not in after.stdout and "User:bob" not in after.stdout, after.stdout


# --- 2. producing and consuming as alice and bob -------------------------------------------------------


def _read_as_admin(bootstrap: str, topic: str, timeout_s: float = 30.0) -> tuple[int, list[tuple[bytes, bytes]]]:
    """confluent-kafka as admin over SASL_PLAINTEXT: partition 0's high watermark and every record
    (key, value) from the start up to it."""
    consumer = confluent_kafka.Consumer({
        **_librdkafka_login(bootstrap, "admin"),
        "group.id": "odradek-acl-readback",  # required by librdkafka; unused with assign()
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
    })
    try:
        partition = confluent_kafka.TopicPartition(topic, 0)
        _low, high = consumer.get_watermark_offsets(partition, timeout=timeout_s)
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        records: list[tuple[bytes, bytes]] = []
        errors: list[str] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < high and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=high - len(records), timeout=0.5):
                if msg.error():
                    errors.append(str(msg.error()))
                else:
                    records.append((msg.key(), msg.value()))
        assert len(records) == high, f"admin read {len(records)} of {high} records of {topic}; errors: {errors[:5]}"
        return high, records
    finally:
        consumer.close()


def _key_values(lines: list[str]) -> list[tuple[bytes, bytes]]:
    return [tuple(part.encode() for part in line.split(":", 1)) for line in lines]  # type: ignore[misc]


def test_console_tools_as_alice_and_bob(acl_broker, granted, java_tools):
    """alice (READ/WRITE on orders, READ on group billing) produces and consumes in billing, and
    kafka-consumer-groups shows billing's committed offsets; bob (no ACL on orders) is refused with
    TopicAuthorizationException and writes nothing; alice in a group she has no ACL for is refused
    with GroupAuthorizationException."""
    bootstrap, alice, bob = acl_broker.bootstrap, acl_broker.properties["alice"], acl_broker.properties["bob"]

    produced = java_tools.run(CONSOLE_PRODUCER, "--bootstrap-server", bootstrap, "--command-config", alice,
                              "--topic", "orders", "--reader-property", "parse.key=true",
                              "--reader-property", "key.separator=:", input="\n".join(ORDER_LINES) + "\n",
                              timeout_s=TOOL_TIMEOUT_S)
    assert "ERROR" not in produced.stderr, produced.stderr

    consumed = java_tools.run(CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--command-config", alice,
                              "--topic", "orders", "--group", "billing", "--from-beginning",
                              "--max-messages", len(ORDER_LINES), "--formatter-property", "print.key=true",
                              "--timeout-ms", 15_000, timeout_s=TOOL_TIMEOUT_S)
    assert _lines(consumed.stdout) == [line.replace(":", "\t", 1) for line in ORDER_LINES], consumed.stderr
    assert f"Processed a total of {len(ORDER_LINES)} messages" in consumed.stderr
    assert "ERROR" not in consumed.stderr, consumed.stderr

    described = java_tools.run(CONSUMER_GROUP_COMMAND, "--bootstrap-server", bootstrap, "--command-config", alice,
                               "--describe", "--group", "billing", timeout_s=TOOL_TIMEOUT_S)
    rows = [line.split() for line in _lines(described.stdout)]
    count = str(len(ORDER_LINES))
    assert [r[:6] for r in rows if r[:1] == ["billing"]] == [["billing", "orders", "0", count, count, "0"]], \
        described.stdout

    # bob: the console producer reports the refusal (and exits 0, as Kafka's does) ...
    refused = java_tools.run(CONSOLE_PRODUCER, "--bootstrap-server", bootstrap, "--command-config", bob,
                             "--topic", "orders", input="bob-1:not allowed\n", check=False, timeout_s=TOOL_TIMEOUT_S)
    assert ("org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized to access topics: [orders]"
            in refused.stderr), refused.stdout + refused.stderr
    # ... and nothing of bob's reached the log: admin reads exactly alice's records
    high, records = _read_as_admin(bootstrap, "orders")
    assert (high, records) == (len(ORDER_LINES), _key_values(ORDER_LINES))

    # alice in a group she has no ACL for
    other = java_tools.run(CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--command-config", alice,
                           "--topic", "orders", "--group", "other", "--from-beginning",
                           "--max-messages", len(ORDER_LINES), "--timeout-ms", 15_000,
                           check=False, timeout_s=TOOL_TIMEOUT_S)
    assert ("org.apache.kafka.common.errors.GroupAuthorizationException: Not authorized to access group: other"
            in other.stderr), other.stdout + other.stderr
    assert _lines(other.stdout) == [], other.stdout
    assert "Processed a total of 0 messages" in other.stderr


# --- 3. kafka-topics --list per user --------------------------------------------------------------------


def test_kafka_topics_list_shows_only_described_topics(acl_broker, granted, java_tools):
    """Metadata leaves out the topics a user may not DESCRIBE: bob sees neither orders nor payroll
    (at most logs-app, while his prefixed ACL exists), alice sees orders only, admin (a super user)
    every topic."""

    def topics_of(user: str) -> list[str]:
        listed = java_tools.run(TOPIC_COMMAND, "--bootstrap-server", acl_broker.bootstrap, "--command-config",
                                acl_broker.properties[user], "--list", timeout_s=TOOL_TIMEOUT_S)
        return _lines(listed.stdout)

    bob = topics_of("bob")
    assert "orders" not in bob and "payroll" not in bob, bob
    assert set(bob) <= {"logs-app"}, bob
    assert topics_of("alice") == ["orders"]
    admin = topics_of("admin")
    assert set(TOPICS) <= set(admin), admin


# --- 4. no authorizer ------------------------------------------------------------------------------------


def test_kafka_acls_without_an_authorizer_is_security_disabled(broker, java_tools):
    """Without authorizer.class.name the ACL APIs answer SECURITY_DISABLED: kafka-acls --list and
    --add fail (exit status 1) saying no authorizer is configured."""
    for args in (["--list"], ["--add", *GRANTS[ORDERS][0]]):
        failed = java_tools.run(ACL_COMMAND, "--bootstrap-server", broker.bootstrap_servers, *args,
                                check=False, timeout_s=TOOL_TIMEOUT_S)
        output = failed.stdout + failed.stderr
        assert failed.returncode == 1, output
        assert "Error while executing ACL command:" in failed.stdout, output
        assert "org.apache.kafka.common.errors.SecurityDisabledException: No Authorizer is configured" in failed.stdout, \
            output
