"""Brokers that talk to each other over SASL_SSL, as a secured Kafka cluster does: replication and
transaction markers go over the inter-broker listener with TLS and a SASL login, and a broker
with the wrong inter-broker password never joins the in-sync replicas (and says why)."""

from __future__ import annotations

import json

import confluent_kafka

from conftest import free_port
from tls_material import STORE_PASSWORD, make_tls_material

from .test_replication import create_replicated_topic, describe

BROKER_PASSWORD = "broker-secret"


def _secure_settings(tls, password: str) -> dict[str, str]:
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
            f'password="{password}" user_broker="{BROKER_PASSWORD}" user_alice="alice-secret";')
    return {
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(tls.broker.pkcs12),
        "ssl.keystore.password": STORE_PASSWORD,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.ca_pem),
        "replica.lag.time.max.ms": "3000",
    }


def test_brokers_replicate_over_sasl_ssl_and_a_wrong_password_never_joins(cluster, tmp_path):
    tls = make_tls_material(tmp_path / "tls")
    brokers = cluster(0)
    secure_ports = {}
    for node_id in (1, 2, 3):
        secure_ports[node_id] = free_port()
        password = BROKER_PASSWORD if node_id != 3 else "not-the-broker-password"
        brokers.add_broker(node_id, extra_listeners=f"SASL_SSL://127.0.0.1:{secure_ports[node_id]}",
                           **_secure_settings(tls, password))
    brokers.wait_until_formed()

    create_replicated_topic(brokers.bootstrap_servers, "guarded", 3)
    brokers.wait_for(lambda: all(sorted(isr) == [1, 2] or (leader == 3 and sorted(isr) == [1, 2, 3])
                                 for leader, _, isr in describe(brokers.bootstrap_servers, "guarded").values()),
                     30, "broker 3 out of the ISR of every partition it must fetch")

    # A client on the SASL_SSL listener: acks=all records reach every in-sync replica over TLS.
    client = {"bootstrap.servers": f"127.0.0.1:{secure_ports[1]}", "security.protocol": "SASL_SSL",
              "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret",
              "ssl.ca.location": str(tls.ca_pem)}
    producer = confluent_kafka.Producer({**client, "acks": "all", "enable.idempotence": True})
    delivered = []
    for i in range(30):
        producer.produce("guarded", f"record-{i}".encode(), partition=i % 3,
                         on_delivery=lambda error, message: delivered.append(error))
    assert producer.flush(30) == 0
    assert delivered == [None] * 30

    for leader, _, isr in describe(brokers.bootstrap_servers, "guarded").values():
        if leader != 3:
            assert 3 not in isr
    output = brokers.broker(3).output()
    assert "authentication with PLAIN at 127.0.0.1" in output and "Invalid username or password" in output
    assert "not-the-broker-password" not in "\n".join(l for l in output.splitlines() if not l.startswith("--- "))
    for node_id in (1, 2):
        assert "failed" not in "\n".join(l for l in brokers.broker(node_id).output().splitlines()
                                         if "Fetching from broker" in l and "broker 3" not in l)


def test_acls_created_on_one_broker_apply_on_every_broker(cluster, tmp_path):
    """The brokers authenticate to each other as User:broker (a super user); an ACL granted through
    broker 1 lets alice read from a partition broker 2 leads, and is in ZooKeeper where Kafka keeps it."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType,
                                       ResourceType)

    tls = make_tls_material(tmp_path / "tls")
    brokers = cluster(0)
    ports = {}
    for node_id in (1, 2):
        ports[node_id] = free_port()
        brokers.add_broker(node_id, extra_listeners=f"SASL_SSL://127.0.0.1:{ports[node_id]}",
                           **_secure_settings(tls, BROKER_PASSWORD),
                           **{"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                              "super.users": "User:broker;User:ANONYMOUS"})
    brokers.wait_until_formed()
    create_replicated_topic(brokers.bootstrap_servers, "granted", 2, replication_factor=2)

    def client(node_id: int) -> dict:
        return {"bootstrap.servers": f"127.0.0.1:{ports[node_id]}", "security.protocol": "SASL_SSL",
                "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret",
                "ssl.ca.location": str(tls.ca_pem)}

    def alice_sees(node_id: int) -> bool:
        return "granted" in AdminClient(client(node_id)).list_topics(timeout=10).topics

    assert not alice_sees(1) and not alice_sees(2)
    grant = AclBinding(ResourceType.TOPIC, "granted", ResourcePatternType.LITERAL, "User:alice", "*",
                       AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    admin = AdminClient({"bootstrap.servers": brokers.broker(1).bootstrap_servers})  # ANONYMOUS is a super user here
    admin.create_acls([grant])[grant].result(timeout=30)
    brokers.wait_for(lambda: alice_sees(2), 15, "broker 2 applies the ACL created through broker 1")
    stored = brokers.read("/kafka-acl/Topic/granted")
    assert stored["acls"] == [{"principal": "User:alice", "permissionType": "Allow", "operation": "Describe", "host": "*"}]


def test_client_quotas_set_through_one_broker_apply_on_every_broker(cluster):
    """A quota set through broker 1 is in ZooKeeper where Kafka keeps it (next to the user's SCRAM
    credential, which stays), broker 2 describes and enforces it, and its removal through broker 2
    reaches broker 1."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    from kio.schema.metadata.v12.request import MetadataRequest

    from integration.test_quotas import alter, describe
    from integration.wire import WireClient

    brokers = cluster(0)
    for node_id in (1, 2):
        brokers.add_broker(node_id, **{"quota.window.num": "2"})
    brokers.wait_until_formed()
    one, two = (brokers.broker(node_id).bootstrap_servers for node_id in (1, 2))

    admin = AdminClient({"bootstrap.servers": one})
    credential = UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                              b"alice-secret")
    for future in admin.alter_user_scram_credentials([credential]).values():
        future.result(timeout=30)
    with WireClient(one) as wire:
        assert alter(wire, {"user": "alice"}, {"producer_byte_rate": 1048576})[0] == 0
        assert alter(wire, {"user": None}, {"request_percentage": 1})[0] == 0
    stored = brokers.read("/config/users/alice")["config"]
    assert stored["producer_byte_rate"] == "1048576" and "SCRAM-SHA-256" in stored
    assert brokers.read("/config/users/<default>")["config"] == {"request_percentage": "1.0"}

    expected = {(("user", "alice"),): {"producer_byte_rate": 1048576.0}, (("user", None),): {"request_percentage": 1.0}}
    with WireClient(two) as wire:
        brokers.wait_for(lambda: describe(wire) == expected, 15, "broker 2 has the quotas set through broker 1")
        admin_two = AdminClient({"bootstrap.servers": two})  # kept referenced until its future resolves
        scram = admin_two.describe_user_scram_credentials(["alice"])["alice"].result(30)
        assert [info.mechanism for info in scram.scram_credential_infos] == [ScramMechanism.SCRAM_SHA_256]
        # broker 2 enforces the 1% request quota on ANONYMOUS, as every user
        metadata = MetadataRequest(topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
        assert any(wire.request(3, 12, metadata).throttle_time.total_seconds() > 0 for _ in range(5000))
        assert alter(wire, {"user": None}, {"request_percentage": None})[0] == 0
    with WireClient(one) as wire:
        brokers.wait_for(lambda: describe(wire) == {(("user", "alice"),): {"producer_byte_rate": 1048576.0}}, 15,
                         "broker 1 forgets the quota removed through broker 2")


def test_acls_created_at_once_through_two_brokers_are_all_kept(cluster):
    """Two operators grant access to the same topic at the same moment, one through each broker:
    every binding is stored (each write is conditional on what the other wrote), and deleting them
    through either broker removes them all."""
    import threading

    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)

    brokers = cluster(0)
    for node_id in (1, 2):
        brokers.add_broker(node_id, **{"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                                       "super.users": "User:ANONYMOUS"})
    brokers.wait_until_formed()

    def grant(node_id: int) -> None:
        admin = AdminClient({"bootstrap.servers": brokers.broker(node_id).bootstrap_servers})
        for index in range(15):
            binding = AclBinding(ResourceType.TOPIC, "shared", ResourcePatternType.LITERAL, f"User:user-{node_id}-{index}",
                                 "*", AclOperation.READ, AclPermissionType.ALLOW)
            admin.create_acls([binding])[binding].result(timeout=30)

    threads = [threading.Thread(target=grant, args=(node_id,)) for node_id in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stored = brokers.read("/kafka-acl/Topic/shared")["acls"]
    assert sorted(entry["principal"] for entry in stored) == sorted(
        f"User:user-{node_id}-{index}" for node_id in (1, 2) for index in range(15))

    every = AclBindingFilter(ResourceType.TOPIC, "shared", ResourcePatternType.LITERAL, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    admin = AdminClient({"bootstrap.servers": brokers.broker(2).bootstrap_servers})
    assert len(admin.delete_acls([every])[every].result(timeout=30)) == 30
    brokers.wait_for(lambda: admin.describe_acls(every).result(timeout=10) == [], 15, "no binding left")


def test_a_delegation_token_made_through_one_broker_logs_in_at_every_broker(cluster, tmp_path):
    """alice creates a token through broker 1 with Kafka's tool: it is in ZooKeeper where Kafka keeps
    it (without its secret), a job logs in with it at broker 2, and once alice expires it through
    broker 2 it logs in at neither."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    from compat.conftest import JavaTools, fetch

    java = JavaTools(fetch("java"))
    brokers = cluster(0)
    ports = {}
    for node_id in (1, 2):
        ports[node_id] = free_port()
        brokers.add_broker(node_id, extra_listeners=f"SASL_PLAINTEXT://127.0.0.1:{ports[node_id]}",
                           **{"sasl.enabled.mechanisms": "SCRAM-SHA-256", "delegation.token.secret.key": "one secret"})
    brokers.wait_until_formed()
    admin = AdminClient({"bootstrap.servers": brokers.broker(1).bootstrap_servers})
    credential = UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                              b"alice-secret")
    for future in admin.alter_user_scram_credentials([credential]).values():
        future.result(timeout=30)

    def properties(name: str, user: str, password: str, token: bool = False):
        path = tmp_path / f"{name}.properties"
        extension = ' tokenauth="true"' if token else ""
        path.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
                        "default.api.timeout.ms=15000\nrequest.timeout.ms=10000\n"
                        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                        f'username="{user}" password="{password}"{extension};\n')
        return path

    alice = properties("alice", "alice", "alice-secret")
    created = java.run("org.apache.kafka.tools.DelegationTokenCommand", "--bootstrap-server",
                       f"127.0.0.1:{ports[1]}", "--command-config", alice, "--create", "--max-life-time-period", -1)
    [token_id, hmac] = next(line.split()[:2] for line in created.stdout.splitlines()
                            if len(line.split()) == 8 and line.split()[2] == "User:alice")
    stored = brokers.read(f"/delegation_token/tokens/{token_id}")
    assert (stored["owner"], stored["tokenId"], stored["renewers"]) == ("User%3Aalice", token_id, [])
    assert hmac not in json.dumps(stored)

    job = properties("job", token_id, hmac, token=True)

    def logs_in_at(node_id: int) -> bool:
        listed = java.run("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", f"127.0.0.1:{ports[node_id]}",
                          "--command-config", job, "--list", check=False, timeout_s=60)
        return listed.returncode == 0

    brokers.wait_for(lambda: logs_in_at(2), 30, "the token made through broker 1 logs in at broker 2")
    java.run("org.apache.kafka.tools.DelegationTokenCommand", "--bootstrap-server", f"127.0.0.1:{ports[2]}",
             "--command-config", alice, "--expire", "--hmac", hmac, "--expiry-time-period", -1)
    brokers.wait_for(lambda: not logs_in_at(1), 30, "the token expired through broker 2 no longer logs in at broker 1")
    assert not logs_in_at(2)
