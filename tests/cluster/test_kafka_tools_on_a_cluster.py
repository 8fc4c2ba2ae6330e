"""Kafka's own 4.4 tools against a 3-broker odradek cluster: kafka-topics creates and describes a
replicated topic (leaders, replicas, ISR, under-replicated partitions), kafka-reassign-partitions
generates, executes and verifies a move onto a fourth broker under load, and kafka-leader-election
restores preferred leaders, a reassignment's --throttle holds the copy to its rate, and kafka-configs
sets group configs that every broker sees. The tools are the compat suite's (Maven Central, cached)."""

from __future__ import annotations

import json
import os
import re
import time

import confluent_kafka
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

from compat.conftest import JavaTools, fetch

from .load import LoadProducer
from .test_operations import assert_all_acknowledged_readable
from .test_replication import describe

TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
REASSIGN_COMMAND = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
LEADER_ELECTION_COMMAND = "org.apache.kafka.tools.LeaderElectionCommand"
CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"


def tools() -> JavaTools:
    return JavaTools(fetch("java"))


def test_kafka_topics_describes_a_replicated_topic(cluster):
    java = tools()
    brokers = cluster(3)
    bootstrap = brokers.bootstrap_servers
    java.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--create", "--topic", "kaninitopic",
             "--partitions", "3", "--replication-factor", "3")
    described = java.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--topic", "kaninitopic").stdout
    rows = re.findall(r"Partition: (\d+)\s+Leader: (\d+)\s+Replicas: ([\d,]+)\s+Isr: ([\d,]+)", described)
    assert len(rows) == 3, described
    for _partition, leader, replicas, isr in rows:
        assert sorted(replicas.split(",")) == ["1", "2", "3"] and sorted(isr.split(",")) == ["1", "2", "3"]
        assert leader == replicas.split(",")[0]
    assert "ReplicationFactor: 3" in described

    brokers.broker(3).kill()
    brokers.wait_for(lambda: all(3 not in isr for _, _, isr in describe(brokers.broker(1).bootstrap_servers, "kaninitopic").values()),
                     30, "broker 3 out of every ISR")
    under = java.run(TOPIC_COMMAND, "--bootstrap-server", brokers.broker(1).bootstrap_servers, "--describe",
                     "--under-replicated-partitions").stdout
    assert len(re.findall(r"Topic: kaninitopic\s+Partition: \d+", under)) == 3, under
    brokers.broker(3).start()


def test_kafka_reassign_partitions_moves_a_topic_onto_a_new_broker(cluster, tmp_path):
    java = tools()
    brokers = cluster(3)
    bootstrap = brokers.bootstrap_servers
    java.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--create", "--topic", "moved",
             "--partitions", "2", "--replication-factor", "2")
    with LoadProducer(bootstrap, "moved", 2) as load:
        load.wait_for_more(500, "records before the move")
        brokers.add_broker(4)
        brokers.wait_until_formed()
        topics = tmp_path / "topics.json"
        topics.write_text(json.dumps({"version": 1, "topics": [{"topic": "moved"}]}))
        generated = java.run(REASSIGN_COMMAND, "--bootstrap-server", bootstrap, "--generate",
                             "--topics-to-move-json-file", topics, "--broker-list", "2,3,4").stdout
        proposal = json.loads(generated.split("Proposed partition reassignment configuration")[1].strip().splitlines()[0])
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps(proposal))
        executed = java.run(REASSIGN_COMMAND, "--bootstrap-server", bootstrap, "--execute",
                            "--reassignment-json-file", plan).stdout
        assert "Successfully started partition reassignment" in executed, executed

        def verified() -> bool:
            result = java.run(REASSIGN_COMMAND, "--bootstrap-server", bootstrap, "--verify",
                              "--reassignment-json-file", plan, check=False)
            return "is completed" in result.stdout and "still in progress" not in result.stdout

        brokers.wait_for(verified, 90, "kafka-reassign-partitions --verify reports the move complete")
        wanted = {entry["partition"]: sorted(entry["replicas"]) for entry in proposal["partitions"]}
        current = describe(bootstrap, "moved")
        assert {p: sorted(replicas) for p, (_, replicas, _) in current.items()} == wanted
        load.wait_for_more(500, "records after the move")
    assert_all_acknowledged_readable(bootstrap, load)


def copied_bytes(broker, tp_dir: str) -> int:
    directory = broker.log_dir / tp_dir
    return sum(f.stat().st_size for f in directory.glob("*.log")) if directory.exists() else 0


def configs_of(bootstrap: str, resource: ConfigResource) -> dict[str, str]:
    """The configs set on the resource itself (not the cluster-wide defaults it inherits)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    own = {ConfigSource.DYNAMIC_TOPIC_CONFIG.value, ConfigSource.DYNAMIC_BROKER_CONFIG.value, ConfigSource.GROUP_CONFIG.value}
    return {name: entry.value for name, entry in described.items() if entry.source in own}


def test_kafka_reassign_partitions_throttle_holds_a_new_replica_to_the_rate(cluster, tmp_path):
    """--throttle sets Kafka's replication throttles (rates on the brokers, throttled replicas on
    the topic): the new replica copies at about the rate, not at loopback speed; --verify clears
    them once the move is done."""
    java = tools()
    brokers = cluster(3)
    bootstrap = brokers.bootstrap_servers
    java.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--create", "--topic", "throttled",
             "--replica-assignment", "1")
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "none"})
    for _ in range(8000):
        producer.produce("throttled", value=os.urandom(1024))
        producer.poll(0)
    assert producer.flush(60) == 0
    total = copied_bytes(brokers.broker(1), "throttled-0")
    assert total > 8_000_000

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "throttled", "partition": 0, "replicas": [1, 2]}]}))
    rate = 1_000_000
    executed = java.run(REASSIGN_COMMAND, "--bootstrap-server", bootstrap, "--execute",
                        "--reassignment-json-file", plan, "--throttle", str(rate)).stdout
    started = time.monotonic()
    assert "Successfully started partition reassignment" in executed, executed
    assert f"The inter-broker throttle limit was set to {rate} B/s" in executed, executed
    assert configs_of(bootstrap, ConfigResource(ConfigResource.Type.TOPIC, "throttled")) == {
        "leader.replication.throttled.replicas": "0:1", "follower.replication.throttled.replicas": "0:2"}
    leader_configs = configs_of(brokers.broker(1).bootstrap_servers, ConfigResource(ConfigResource.Type.BROKER, "1"))
    assert leader_configs["leader.replication.throttled.rate"] == str(rate)

    time.sleep(3)
    copied, elapsed = copied_bytes(brokers.broker(2), "throttled-0"), time.monotonic() - started
    # About `rate` per second, plus the first fetch (replica.fetch.max.bytes, 1 MiB) before the
    # rate is measured; unthrottled, the 8 MB copy takes a fraction of a second on loopback.
    assert 0 < copied <= rate * (elapsed + 1) + (1 << 20), (copied, elapsed, total)
    assert describe(bootstrap, "throttled")[0][2] == [1], "the new replica cannot be in sync yet"

    def verified() -> bool:
        result = java.run(REASSIGN_COMMAND, "--bootstrap-server", bootstrap, "--verify",
                          "--reassignment-json-file", plan, check=False)
        return "is completed" in result.stdout and "still in progress" not in result.stdout

    brokers.wait_for(verified, 60, "kafka-reassign-partitions --verify reports the move complete")
    assert sorted(describe(bootstrap, "throttled")[0][2]) == [1, 2]
    assert copied_bytes(brokers.broker(2), "throttled-0") == total
    brokers.wait_for(lambda: not configs_of(bootstrap, ConfigResource(ConfigResource.Type.TOPIC, "throttled")),
                     10, "--verify removed the topic's throttled replicas")
    leader_configs = configs_of(brokers.broker(1).bootstrap_servers, ConfigResource(ConfigResource.Type.BROKER, "1"))
    assert "leader.replication.throttled.rate" not in leader_configs


def test_kafka_leader_election_restores_the_preferred_leader(cluster):
    java = tools()
    brokers = cluster(3, **{"auto.leader.rebalance.enable": "false"})
    bootstrap = brokers.bootstrap_servers
    java.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--create", "--topic", "elected",
             "--partitions", "1", "--replication-factor", "3")
    preferred = describe(bootstrap, "elected")[0][1][0]
    assert brokers.broker(preferred).stop(timeout_s=30) == 0
    brokers.broker(preferred).start()
    brokers.wait_for(lambda: sorted(describe(bootstrap, "elected")[0][2]) == [1, 2, 3], 30, "ISR complete again")
    assert describe(bootstrap, "elected")[0][0] != preferred
    result = java.run(LEADER_ELECTION_COMMAND, "--bootstrap-server", bootstrap, "--election-type", "preferred",
                      "--topic", "elected", "--partition", "0")
    assert "Successfully completed leader election (PREFERRED)" in result.stdout, result.stdout
    assert describe(bootstrap, "elected")[0][0] == preferred


def test_kafka_configs_group_config_set_on_one_broker_reaches_every_broker(cluster):
    """A group's coordinator may be any broker: kafka-configs --entity-type groups sent to one broker
    is stored in ZooKeeper (/config/groups/<group>) and every broker describes it at once; the
    cluster-wide min.insync.replicas (KIP-966) is the same dynamic default on every broker."""
    java = tools()
    brokers = cluster(3)
    java.run(CONFIG_COMMAND, "--bootstrap-server", brokers.broker(1).bootstrap_servers, "--entity-type", "groups",
             "--entity-name", "orders", "--alter", "--add-config", "consumer.heartbeat.interval.ms=6000")
    assert brokers.read("/config/groups/orders") == {"version": 1, "config": {"consumer.heartbeat.interval.ms": "6000"}}
    for node in (1, 2, 3):
        bootstrap = brokers.broker(node).bootstrap_servers
        brokers.wait_for(lambda: configs_of(bootstrap, ConfigResource(ConfigResource.Type.GROUP, "orders")).get(
            "consumer.heartbeat.interval.ms") == "6000", 10, f"broker {node} sees the group config")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        resource = ConfigResource(ConfigResource.Type.BROKER, str(node))
        described = admin.describe_configs([resource])[resource].result(30)
        assert described["min.insync.replicas"].source == 3  # DYNAMIC_DEFAULT_BROKER_CONFIG
