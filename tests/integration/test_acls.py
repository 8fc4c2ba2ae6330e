"""ACLs as a team turning on authorization sees them: an admin (super user) grants, each principal
can do exactly what it was granted, and everything else gets the error code Kafka gives.

One broker, authorizer on, SASL_PLAINTEXT with PLAIN accounts admin (super user), alice, bob and
carol. Clients are confluent-kafka (librdkafka) and a raw wire client where only the exact code
matters.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import confluent_kafka
import pytest
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from conftest import BrokerProcess, free_port
from kio.schema.describe_acls.v3.request import DescribeAclsRequest
from kio.schema.elect_leaders.v0 import request as elect_leaders_v0
from kio.schema.elect_leaders.v2 import request as elect_leaders_v2
from kio.static.primitive import i8, i32
from odradek.protocol.errors import ErrorCode

from .wire import WireClient

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" '
              'user_alice="alice-secret" user_bob="bob-secret" user_carol="carol-secret";')


class AclBroker:
    def __init__(self, process: BrokerProcess, sasl_port: int) -> None:
        self.process, self.sasl_port = process, sasl_port
        self._admins: dict[str, AdminClient] = {}  # kept: a dropped AdminClient fails its futures

    def settings(self, user: str) -> dict:
        return {"bootstrap.servers": f"127.0.0.1:{self.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": f"{user}-secret"}

    def admin(self, user: str = "admin") -> AdminClient:
        if user not in self._admins:
            self._admins[user] = AdminClient(self.settings(user))
        return self._admins[user]


def _start(directory, sasl_port: int, **extra: str) -> BrokerProcess:
    process = BrokerProcess(directory, {
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "group.initial.rebalance.delay.ms": "0",
        **extra,
    })
    process.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{process.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
    return process.start()


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory) -> AclBroker:
    sasl_port = free_port()
    process = _start(tmp_path_factory.mktemp("acls"), sasl_port)
    broker = AclBroker(process, sasl_port)
    try:
        _grant_the_matrix(broker)
    except BaseException:
        process.stop()  # a failed setup must not leave the broker running
        raise
    yield broker
    assert process.stop() == 0, process.output()


def _grant_the_matrix(broker: AclBroker) -> None:
    admin = broker.admin()
    for future in admin.create_topics([NewTopic(t, 2, 1) for t in ("orders", "payments", "logs-app", "shared")]).values():
        future.result(timeout=30)
    grants = [
        AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "billing", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "logs-", ResourcePatternType.PREFIXED, "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "shared", ResourcePatternType.LITERAL, "User:*", "*", AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "shared", ResourcePatternType.LITERAL, "User:bob", "*", AclOperation.READ, AclPermissionType.DENY),
        AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:carol", "*", AclOperation.CREATE, AclPermissionType.ALLOW),
    ]
    for future in admin.create_acls(grants).values():
        future.result(timeout=30)


def _describe_acls_as(broker: AclBroker, user: str):
    """DescribeAcls (everything) as `user`, over SASL, with odradek's own client (the raw answer:
    librdkafka returns an empty list for a refused DescribeAcls)."""
    import asyncio

    from odradek.client.connection import BrokerConnection
    from odradek.security.client_security import ClientSecurity

    async def describe():
        security = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", user, f"{user}-secret")
        connection = await BrokerConnection("127.0.0.1", broker.sasl_port, security=security).connect(10)
        try:
            return await connection.request(29, {
                "resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1,
                "principal_filter": None, "host_filter": None, "operation": 1, "permission_type": 1})
        finally:
            await connection.close()

    return asyncio.run(describe())


def _produce(broker: AclBroker, user: str, topic: str, count: int = 3) -> list:
    """The delivery errors (None for each delivered record)."""
    producer = confluent_kafka.Producer({**broker.settings(user), "message.timeout.ms": 5000})
    outcomes = []
    for i in range(count):
        producer.produce(topic, f"{user}-{i}".encode(), on_delivery=lambda error, message: outcomes.append(error))
    producer.flush(15)
    return [None if error is None else error.code() for error in outcomes]


def _consume(broker: AclBroker, user: str, topic: str, group: str, wanted: int):
    """(values read, the first error the consumer reported)."""
    consumer = confluent_kafka.Consumer({**broker.settings(user), "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values, error, deadline = [], None, time.monotonic() + 20
    while len(values) < wanted and error is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error() is not None:
            if message.error().code() != RdKafkaError._PARTITION_EOF:
                error = message.error().code()
            continue
        values.append(message.value())
    consumer.close()
    return values, error


def test_a_principal_does_what_it_was_granted(acl_broker):
    assert _produce(acl_broker, "alice", "orders") == [None] * 3
    values, error = _consume(acl_broker, "alice", "orders", "billing", 3)
    assert error is None and sorted(values) == [b"alice-0", b"alice-1", b"alice-2"]
    assert _produce(acl_broker, "alice", "logs-app") == [None] * 3  # the prefixed grant


def test_a_principal_without_a_grant_gets_topic_authorization_failed(acl_broker):
    assert _produce(acl_broker, "bob", "orders") == [RdKafkaError.TOPIC_AUTHORIZATION_FAILED] * 3
    assert _produce(acl_broker, "alice", "payments") == [RdKafkaError.TOPIC_AUTHORIZATION_FAILED] * 3
    _, error = _consume(acl_broker, "bob", "orders", "billing", 1)
    assert error in (RdKafkaError.TOPIC_AUTHORIZATION_FAILED, RdKafkaError.GROUP_AUTHORIZATION_FAILED)


def test_a_group_without_a_grant_gets_group_authorization_failed(acl_broker):
    _, error = _consume(acl_broker, "alice", "orders", f"other-{uuid.uuid4().hex[:6]}", 1)
    assert error == RdKafkaError.GROUP_AUTHORIZATION_FAILED


def test_metadata_hides_the_topics_a_principal_may_not_describe(acl_broker):
    assert set(acl_broker.admin("alice").list_topics(timeout=10).topics) == {"orders", "logs-app", "shared"}
    # bob is denied READ on shared, but DESCRIBE comes with the READ everyone has (Kafka's rule)
    assert set(acl_broker.admin("bob").list_topics(timeout=10).topics) == {"shared"}
    assert {"orders", "payments", "logs-app", "shared"} <= set(acl_broker.admin().list_topics(timeout=10).topics)
    named = acl_broker.admin("bob").list_topics("orders", timeout=10).topics["orders"]
    assert named.error is not None and named.error.code() == RdKafkaError.TOPIC_AUTHORIZATION_FAILED


def test_deny_wins_over_an_allow_for_everyone(acl_broker):
    assert _produce(acl_broker, "admin", "shared") == [None] * 3
    values, error = _consume(acl_broker, "carol", "shared", f"c-{uuid.uuid4().hex[:6]}", 3)
    # carol may read shared (User:*) but has no group grant: the group is refused, not the topic
    assert error == RdKafkaError.GROUP_AUTHORIZATION_FAILED and values == []


def test_creating_topics_needs_create_on_the_cluster_or_the_topic(acl_broker):
    name = f"made-by-carol-{uuid.uuid4().hex[:6]}"
    acl_broker.admin("carol").create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
    refused = acl_broker.admin("bob").create_topics([NewTopic("made-by-bob", 1, 1)])["made-by-bob"]
    with pytest.raises(confluent_kafka.KafkaException) as error:
        refused.result(timeout=30)
    assert error.value.args[0].code() == RdKafkaError.TOPIC_AUTHORIZATION_FAILED


def test_leader_election_needs_alter_on_the_cluster_and_every_named_partition_says_so(acl_broker):
    """A v0 ElectLeaders response has no top-level error: without ALTER on the cluster, each
    partition the request names carries CLUSTER_AUTHORIZATION_FAILED (v1+ also at the top)."""
    from confluent_kafka import ElectionType, TopicPartition

    with pytest.raises(confluent_kafka.KafkaException) as error:
        acl_broker.admin("alice").elect_leaders(ElectionType.PREFERRED, [TopicPartition("orders", 0)]).result(timeout=30)
    assert error.value.args[0].code() == RdKafkaError.CLUSTER_AUTHORIZATION_FAILED

    wanted = ((("orders", (0, 1)), ("payments", (1,))))
    with WireClient(acl_broker.process.bootstrap_servers) as anonymous:  # PLAINTEXT: User:ANONYMOUS
        for version, schema in ((0, elect_leaders_v0), (2, elect_leaders_v2)):
            fields = {"election_type": i8(0)} if version else {}
            answer = anonymous.request(43, version, schema.ElectLeadersRequest(
                topic_partitions=tuple(schema.TopicPartitions(topic=t, partitions=tuple(i32(p) for p in ps)) for t, ps in wanted),
                timeout=timedelta(seconds=5), **fields))
            if version:
                assert answer.error_code == ErrorCode.cluster_authorization_failed
            assert sorted((r.topic, p.partition_id, p.error_code) for r in answer.replica_election_results
                          for p in r.partition_result) == [
                ("orders", 0, ErrorCode.cluster_authorization_failed),
                ("orders", 1, ErrorCode.cluster_authorization_failed),
                ("payments", 1, ErrorCode.cluster_authorization_failed),
            ], (version, answer)


def test_transactional_ids_need_write_on_the_transactional_id(acl_broker):
    producer = confluent_kafka.Producer({**acl_broker.settings("alice"), "transactional.id": "alice-tx"})
    with pytest.raises(confluent_kafka.KafkaException) as error:
        producer.init_transactions(15)
    assert error.value.args[0].code() == RdKafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_only_the_cluster_may_change_acls_and_they_are_listed_and_deleted(acl_broker):
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    assert _describe_acls_as(acl_broker, "alice").error_code == ErrorCode.cluster_authorization_failed
    listed = acl_broker.admin().describe_acls(everything).result(timeout=30)
    assert len(listed) == 7
    prefixed = [b for b in listed if b.resource_pattern_type == ResourcePatternType.PREFIXED]
    assert [(b.name, b.principal, b.operation) for b in prefixed] == [("logs-", "User:alice", AclOperation.WRITE)]

    extra = AclBinding(ResourceType.TOPIC, "payments", ResourcePatternType.LITERAL, "User:bob", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    acl_broker.admin().create_acls([extra])[extra].result(timeout=30)
    assert _produce(acl_broker, "bob", "payments") == [None] * 3
    removal = AclBindingFilter(ResourceType.TOPIC, "payments", ResourcePatternType.LITERAL, "User:bob", None,
                               AclOperation.ANY, AclPermissionType.ANY)
    removed = acl_broker.admin().delete_acls([removal])[removal].result(timeout=30)
    assert removed == [extra]
    assert _produce(acl_broker, "bob", "payments") == [RdKafkaError.TOPIC_AUTHORIZATION_FAILED] * 3


def test_invalid_acls_are_refused_with_invalid_request(acl_broker):
    bad = AclBinding(ResourceType.BROKER, "not-the-cluster", ResourcePatternType.LITERAL, "User:alice", "*",
                     AclOperation.ALTER, AclPermissionType.ALLOW)
    with pytest.raises(confluent_kafka.KafkaException) as error:
        acl_broker.admin().create_acls([bad])[bad].result(timeout=30)
    assert error.value.args[0].code() == RdKafkaError.INVALID_REQUEST


def test_acls_survive_a_restart_and_the_acl_apis_say_when_authorization_is_off(tmp_path):
    sasl_port = free_port()
    process = _start(tmp_path / "a", sasl_port)
    broker = AclBroker(process, sasl_port)
    try:
        grant = AclBinding(ResourceType.TOPIC, "kept", ResourcePatternType.LITERAL, "User:alice", "*",
                           AclOperation.READ, AclPermissionType.ALLOW)
        broker.admin().create_acls([grant])[grant].result(timeout=30)
        process.stop()
        process.start()
        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                      AclPermissionType.ANY)
        assert broker.admin().describe_acls(everything).result(timeout=30) == [grant]
    finally:
        assert process.stop() == 0, process.output()

    plain = BrokerProcess(tmp_path / "b", {}).start()
    try:
        wire = WireClient(plain.bootstrap_servers)
        described = wire.request(29, 3, DescribeAclsRequest(
            resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1, principal_filter=None,
            host_filter=None, operation=1, permission_type=1))
        assert described.error_code == ErrorCode.security_disabled
        assert described.error_message == "No Authorizer is configured."
    finally:
        assert plain.stop() == 0


def test_odradek_acls_and_users_commands(acl_broker, tmp_path):
    import subprocess
    import sys

    def as_user(user: str) -> str:
        path = tmp_path / f"{user}.properties"
        path.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config="
                        "org.apache.kafka.common.security.plain.PlainLoginModule required "
                        f'username="{user}" password="{user}-secret";\n')
        return str(path)

    def odradek(user: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "odradek", *args, "--bootstrap-server", f"127.0.0.1:{acl_broker.sasl_port}",
                               "--command-config", as_user(user)], capture_output=True, text=True, timeout=60, input=stdin)

    added = odradek("admin", "acls", "--add", "--allow-principal", "User:carol", "--operation", "Describe", "--topic", "cli-topic")
    assert added.returncode == 0, added.stderr
    listed = odradek("admin", "acls", "--list", "--topic", "cli-topic")
    assert "User:carol" in listed.stdout and "Describe" in listed.stdout
    refused = odradek("bob", "acls", "--list")
    assert refused.returncode == 1 and "not authorized" in refused.stderr
    removed = odradek("admin", "acls", "--remove", "--allow-principal", "User:carol", "--topic", "cli-topic")
    assert removed.returncode == 0 and "Removed 1 ACL(s)" in removed.stdout

    created = odradek("admin", "users", "--add", "dave", "--mechanism", "SCRAM-SHA-256", "--password-stdin", stdin="dave-secret\n")
    assert created.returncode == 0, created.stderr
    users = odradek("admin", "users", "--list", "--output", "json")
    assert {"user": "dave", "mechanism": "SCRAM-SHA-256", "iterations": 4096} in __import__("json").loads(users.stdout)
    assert "dave-secret" not in acl_broker.process.output().split("--- start")[-1].split("\n", 1)[1]


def test_authorized_operations_are_reported_per_principal(acl_broker):
    """What AdminClient.describe_topics/describe_cluster(include_authorized_operations=True) shows:
    each principal's own rights, computed from the ACLs, as Kafka reports them."""
    from confluent_kafka import TopicCollection

    def topic_operations(user: str) -> set:
        described = acl_broker.admin(user).describe_topics(TopicCollection(["orders"]), include_authorized_operations=True)
        return set(described["orders"].result(timeout=30).authorized_operations)

    assert topic_operations("alice") == {AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE}
    admin_operations = topic_operations("admin")  # a super user: everything a topic has
    assert {AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
            AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS} == admin_operations
    cluster = acl_broker.admin("carol").describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert set(cluster.authorized_operations) == {AclOperation.CREATE}
