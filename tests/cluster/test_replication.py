"""Replicated partitions on a 3-broker cluster: what a user checks after the seed's steps, and that
losing a broker loses no acknowledged record.

The producer is librdkafka (confluent-kafka), idempotent with acks=all, as Kafka recommends for
data that must not be lost. Every acknowledged record must come back exactly once, in order,
from every replica: each broker's own log files are read after the cluster stopped.
"""

from __future__ import annotations

import json
import time

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from integration.clients import Record, consume, produce

from .load import LoadProducer, assert_replicas_hold, wait_for


def create_replicated_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int = 3, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor, config=configs)],
        operation_timeout=30, request_timeout=30,
    )
    futures[topic].result(timeout=30)
    # CreateTopics answers once the controller has elected the leaders; each other broker learns
    # them from its ZooKeeper watches a moment later. Tests act on any broker's Metadata at once.
    wait_for(lambda: all(len(view) == partitions and all(leader >= 0 for leader, _, _ in view.values())
                         for view in (describe(server, topic) for server in bootstrap.split(","))),
             30, f"every broker knowing the leaders of {topic}")


def describe(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr), as a Kafka client sees them."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {
        p.id: (p.leader, list(p.replicas), list(p.isrs))
        for p in metadata.topics[topic].partitions.values()
    }


def test_seed_steps_on_a_three_broker_cluster(cluster):
    """Start ZooKeeper, start brokers, create a topic with 3 partitions and 3 replicas."""
    brokers = cluster(3)
    create_replicated_topic(brokers.bootstrap_servers, "kaninitopic", 3)

    # CreateTopics answers once the partitions have leaders; the other brokers learn of them
    # through ZooKeeper watches a moment later (as Kafka's learn from UpdateMetadata).
    wait_for(lambda: all(sorted(isr) == [1, 2, 3] for _, _, isr in describe(brokers.bootstrap_servers, "kaninitopic").values()),
             10, "every broker shows the new partitions with their ISR")
    described = describe(brokers.bootstrap_servers, "kaninitopic")
    assert sorted(described) == [0, 1, 2]
    for leader, replicas, isr in described.values():
        assert sorted(replicas) == [1, 2, 3] and sorted(isr) == [1, 2, 3] and leader == replicas[0]
    assert len({leader for leader, _, _ in described.values()}) == 3, "leaders are spread over the brokers"

    # What an operator sees with zkCli.sh: Kafka's ZooKeeper-mode layout and JSON shapes.
    assert sorted(brokers.zk().get_children("/brokers/ids")) == ["1", "2", "3"]
    registration = brokers.read("/brokers/ids/2")
    assert registration["endpoints"] == [f"PLAINTEXT://127.0.0.1:{brokers.broker(2).port}"]
    assert registration["port"] == brokers.broker(2).port and registration["version"] == 5
    assignment = brokers.read("/brokers/topics/kaninitopic")
    assert assignment["version"] == 3 and sorted(assignment["partitions"]) == ["0", "1", "2"]
    state = brokers.partition_state("kaninitopic", 0)
    assert set(state) >= {"controller_epoch", "leader", "version", "leader_epoch", "isr"}
    assert brokers.read("/controller")["brokerid"] in (1, 2, 3)
    assert int(brokers.read("/controller_epoch")) >= 1
    assert len(brokers.read("/cluster/id")["id"]) == 22

    records = [Record(f"k{i}".encode(), f"v{i}".encode(), partition=i % 3) for i in range(300)]
    produce("confluent", brokers.bootstrap_servers, "kaninitopic", records, acks="all", idempotent=True)
    consumed = consume("confluent", brokers.bootstrap_servers, "kaninitopic", range(3), 300)
    assert sorted(m.value for m in consumed) == sorted(r.value for r in records)


def test_killed_leader_loses_no_acknowledged_record(cluster):
    """kill -9 of a partition's leader while an idempotent acks=all producer runs at full speed:
    producing goes on after the failover, and every acknowledged record is on every replica,
    once, in order."""
    brokers = cluster(3)
    topic = "durable"
    create_replicated_topic(brokers.bootstrap_servers, topic, 1, **{"min.insync.replicas": "2"})
    leader = describe(brokers.bootstrap_servers, topic)[0][0]
    with LoadProducer(brokers.bootstrap_servers, topic, 1) as load:
        load.wait_for_more(2000, "records acknowledged before the kill")
        killed_at = time.monotonic()
        brokers.broker(leader).kill()
        survivor = next(b for n, b in brokers.brokers.items() if n != leader)
        took = wait_for(lambda: describe(survivor.bootstrap_servers, topic)[0][0] not in (leader, -1), 30, "a new leader")
        load.wait_for_more(2000, "producing goes on after the failover")
        print(f"new leader {time.monotonic() - killed_at:.1f} s after kill -9 (seen after {took:.1f} s of polling)")
        brokers.broker(leader).start()
        wait_for(lambda: sorted(describe(survivor.bootstrap_servers, topic)[0][2]) == [1, 2, 3], 30,
                 "the restarted broker back in the ISR")
    wait_for(lambda: sorted(describe(brokers.bootstrap_servers, topic)[0][2]) == [1, 2, 3], 30, "ISR complete")
    time.sleep(1)  # the last fetch round carries the high watermark to every follower
    for broker in brokers.brokers.values():
        assert broker.stop(timeout_s=30) == 0
    assert_replicas_hold(brokers.brokers, load)


def test_consumer_fetches_from_the_replica_in_its_rack(cluster):
    """KIP-392: with RackAwareReplicaSelector, a consumer with client.rack reads from the in-sync
    replica in its rack, and gets every record from it."""
    selector = {"replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector"}
    brokers = cluster(0)
    for node_id in (1, 2, 3):
        brokers.add_broker(node_id, **selector, **{"broker.rack": f"rack-{node_id}"})
    brokers.wait_until_formed()
    create_replicated_topic(brokers.bootstrap_servers, "racked", 1)
    leader, replicas, _ = describe(brokers.bootstrap_servers, "racked")[0]
    follower = next(r for r in replicas if r != leader)
    records = [Record(None, f"r{i}".encode(), partition=0) for i in range(200)]
    produce("confluent", brokers.bootstrap_servers, "racked", records, acks="all")

    fetched_from: list[int] = []

    def stats(report: str) -> None:
        partition = json.loads(report).get("topics", {}).get("racked", {}).get("partitions", {}).get("0", {})
        if partition.get("broker", -1) >= 0:
            fetched_from.append(partition["broker"])

    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": brokers.bootstrap_servers, "group.id": "racked-reader", "client.rack": f"rack-{follower}",
        "enable.auto.commit": False, "statistics.interval.ms": 200, "stats_cb": stats,
    })
    values: list[bytes] = []
    try:
        consumer.assign([confluent_kafka.TopicPartition("racked", 0, confluent_kafka.OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while (len(values) < 200 or not fetched_from or fetched_from[-1] != follower) and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.2):
                if message.error() is None:
                    values.append(message.value())
    finally:
        consumer.close()
    assert values == [r.value for r in records]
    assert fetched_from and fetched_from[-1] == follower, f"fetched from {fetched_from[-5:]}, follower {follower}, leader {leader}"
