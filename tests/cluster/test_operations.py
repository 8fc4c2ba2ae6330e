"""Operating a 3-broker cluster under load: controlled shutdown, rolling restarts, adding a broker
and moving partitions onto it, preferred leader election, consumer groups whose coordinator
dies, and a topic of thousands of partitions created and deleted. A producer (idempotent, acks=all, retries as librdkafka does) runs throughout; what a user
checks: no delivery fails, no acknowledged record is lost or written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from datetime import timedelta

import confluent_kafka
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition as ConfluentTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KafkaTopicPartition
from kio.schema.elect_leaders.v0 import request as elect_leaders_v0
from kio.static.primitive import i32

from integration.clients import consume
from odradek.client import KafkaClient
from odradek.client.admin import DESCRIBE_CONFIGS
from integration.group_clients import GroupConsumer, describe_all
from integration.wire import WireClient
from odradek.protocol.errors import ErrorCode

from .load import LoadProducer
from .test_replication import create_replicated_topic, describe


def assert_all_acknowledged_readable(bootstrap: str, load: LoadProducer) -> None:
    assert not load.failures, load.failures[:5]
    consumed = consume("confluent", bootstrap, load.topic, range(load.partitions), len(load.acknowledged), timeout_s=60)
    values = [m.value for m in consumed]
    assert len(values) == len(set(values)), "a record was written twice"
    assert set(load.acknowledged) <= set(values)


def test_sigterm_of_a_leader_is_a_controlled_shutdown(cluster):
    brokers = cluster(3)
    create_replicated_topic(brokers.bootstrap_servers, "controlled", 3, **{"min.insync.replicas": "2"})
    with LoadProducer(brokers.bootstrap_servers, "controlled", 3) as load:
        load.wait_for_more(1000, "records before the shutdown")
        leader = describe(brokers.bootstrap_servers, "controlled")[0][0]
        started = time.monotonic()
        assert brokers.broker(leader).stop(timeout_s=30) == 0
        took = time.monotonic() - started
        others = ",".join(b.bootstrap_servers for n, b in brokers.brokers.items() if n != leader)
        assert all(p[0] != leader for p in describe(others, "controlled").values()), "leadership moved off first"
        load.wait_for_more(1000, "records after the shutdown")
        brokers.broker(leader).start()
    print(f"controlled shutdown of the leader took {took:.2f} s")
    assert took < 10
    # While it shut down, its fetchers were stopped: it followed each new leader once, not again at
    # every ISR change the controller made meanwhile.
    stopping = brokers.broker(leader).output().split("Shutting down", 1)[1].split("--- start #2", 1)[0]
    followed = re.findall(r"(\S+) \(epoch (\d+)\)", "".join(re.findall(r"Now following .*", stopping)))
    assert len(followed) == len(set(followed)), stopping[-3000:]
    assert_all_acknowledged_readable(brokers.bootstrap_servers, load)


def test_rolling_restart_of_every_broker_loses_nothing(cluster):
    brokers = cluster(3)
    create_replicated_topic(brokers.bootstrap_servers, "rolling", 3, **{"min.insync.replicas": "2"})
    with LoadProducer(brokers.bootstrap_servers, "rolling", 3) as load:
        for node_id in (1, 2, 3):
            load.wait_for_more(500, f"records before restarting broker {node_id}")
            assert brokers.broker(node_id).stop(timeout_s=30) == 0
            brokers.broker(node_id).start()
            brokers.wait_for(
                lambda: all(sorted(isr) == [1, 2, 3] for _, _, isr in describe(brokers.bootstrap_servers, "rolling").values()),
                60, f"broker {node_id} back in every ISR",
            )
        load.wait_for_more(500, "records after the last restart")
    assert_all_acknowledged_readable(brokers.bootstrap_servers, load)


def test_partitions_move_onto_a_new_broker_under_load(cluster):
    brokers = cluster(3)
    create_replicated_topic(brokers.bootstrap_servers, "moving", 2, replication_factor=2)
    with LoadProducer(brokers.bootstrap_servers, "moving", 2) as load:
        load.wait_for_more(1000, "records before adding a broker")
        brokers.add_broker(4)
        brokers.wait_for(lambda: 4 in AdminClient({"bootstrap.servers": brokers.bootstrap_servers}).list_topics(timeout=5).brokers,
                         30, "broker 4 registered")
        admin = KafkaAdminClient(bootstrap_servers=brokers.bootstrap_servers)
        try:
            before = describe(brokers.bootstrap_servers, "moving")
            targets = {0: [4, before[0][1][0]], 1: [4, before[1][1][1]]}
            admin.alter_partition_reassignments({KafkaTopicPartition("moving", p): replicas for p, replicas in targets.items()})
            brokers.wait_for(
                lambda: all(sorted(describe(brokers.bootstrap_servers, "moving")[p][1]) == sorted(r) for p, r in targets.items())
                and not admin.list_partition_reassignments(),
                60, "both partitions on their new replicas",
            )
        finally:
            admin.close()
        after = describe(brokers.bootstrap_servers, "moving")
        assert all(leader in targets[p] for p, (leader, _, _) in after.items())
        load.wait_for_more(1000, "records after the move")
    assert_all_acknowledged_readable(brokers.bootstrap_servers, load)
    removed = {before[p][1][i] for p in (0, 1) for i in (0, 1)} - {b for r in targets.values() for b in r}
    for node_id in removed:
        brokers.wait_for(lambda: not any((brokers.broker(node_id).log_dir / f"moving-{p}").exists() for p in (0, 1)
                                         if node_id not in targets[p]), 30, f"broker {node_id} deleted the moved replicas")


def test_preferred_leader_election_moves_leadership_back(cluster):
    brokers = cluster(3, **{"auto.leader.rebalance.enable": "false"})
    create_replicated_topic(brokers.bootstrap_servers, "preferred", 1)
    preferred = describe(brokers.bootstrap_servers, "preferred")[0][1][0]
    assert brokers.broker(preferred).stop(timeout_s=30) == 0
    brokers.broker(preferred).start()
    brokers.wait_for(lambda: sorted(describe(brokers.bootstrap_servers, "preferred")[0][2]) == [1, 2, 3], 30, "ISR complete")
    assert describe(brokers.bootstrap_servers, "preferred")[0][0] != preferred
    admin = AdminClient({"bootstrap.servers": brokers.bootstrap_servers})
    from confluent_kafka import ElectionType

    result = admin.elect_leaders(ElectionType.PREFERRED, [ConfluentTopicPartition("preferred", 0)]).result(timeout=30)
    assert all(error is None for error in result.values()), result
    assert describe(brokers.bootstrap_servers, "preferred")[0][0] == preferred

    # Only the controller elects; a v0 client (no top-level error code) learns it per partition.
    controller = admin.list_topics(timeout=10).controller_id
    elsewhere = next(b for n, b in brokers.brokers.items() if n != controller)
    with WireClient(elsewhere.bootstrap_servers) as client:
        answer = client.request(43, 0, elect_leaders_v0.ElectLeadersRequest(
            topic_partitions=(elect_leaders_v0.TopicPartitions(topic="preferred", partitions=(i32(0),)),),
            timeout=timedelta(seconds=5)))
    assert [(r.topic, p.partition_id, p.error_code) for r in answer.replica_election_results for p in r.partition_result] \
        == [("preferred", 0, ErrorCode.not_controller)], answer


def test_consumer_group_survives_the_death_of_its_coordinator(cluster):
    brokers = cluster(3)
    create_replicated_topic(brokers.bootstrap_servers, "grouped", 3)
    with LoadProducer(brokers.bootstrap_servers, "grouped", 3) as load:
        load.wait_for_more(300, "records to consume")
        member = GroupConsumer("confluent", brokers.bootstrap_servers, "survivors", ["grouped"], commit="each")
        try:
            member.wait_for(lambda m: len(m.consumed()) > 100, 60, "consuming")
            coordinator = _coordinator_of(brokers.bootstrap_servers, "survivors")
            brokers.broker(coordinator).kill()
            consumed_at_kill = len(member.consumed())
            member.wait_for(lambda m: len(m.consumed()) > consumed_at_kill + 300, 60, "consuming after the coordinator died")
            new_coordinator = _coordinator_of(",".join(b.bootstrap_servers for b in brokers.brokers.values() if b.running), "survivors")
            assert new_coordinator != coordinator
            committed = _committed(brokers.bootstrap_servers, "survivors", "grouped", 3)
            assert sum(committed.values()) > 0, "committed offsets survived the failover"
        finally:
            assert member.stop() == 0, describe_all([member])
        brokers.broker(coordinator).start()


def _coordinator_of(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return description.coordinator.id


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = ConsumerGroupTopicPartitions(group, [ConfluentTopicPartition(topic, p) for p in range(partitions)])
    result = admin.list_consumer_group_offsets([wanted])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}



def test_zookeeper_restart_under_load_stops_nothing_for_long(cluster, zookeeper):
    """ZooKeeper goes away for a few seconds (less than the session timeout) and comes back: the
    brokers keep their sessions, leaders keep serving, and nothing acknowledged is lost."""
    brokers = cluster(3)
    create_replicated_topic(brokers.bootstrap_servers, "zk-restart", 3, **{"min.insync.replicas": "2"})
    with LoadProducer(brokers.bootstrap_servers, "zk-restart", 3) as load:
        load.wait_for_more(500, "records before ZooKeeper stops")
        zookeeper.stop()
        load.wait_for_more(500, "records while ZooKeeper is down")
        zookeeper.start()
        load.wait_for_more(500, "records after ZooKeeper is back")
    assert_all_acknowledged_readable(brokers.bootstrap_servers, load)
    assert all(b.running for b in brokers.brokers.values())


def test_while_zookeeper_is_away_admin_requests_time_out_and_records_keep_flowing(cluster, zookeeper):
    """With ZooKeeper down, a CreateTopics used to hold the broker's event loop until ZooKeeper came
    back, and every client of that broker stalled with it. Now the request waits for ZooKeeper in a
    worker thread, at most zookeeper.connection.timeout.ms, and is answered REQUEST_TIMED_OUT
    (retriable) while produce goes on; once ZooKeeper is back, topics are created again."""
    brokers = cluster(3, **{"zookeeper.connection.timeout.ms": 3000})
    create_replicated_topic(brokers.bootstrap_servers, "zk-away", 3, **{"min.insync.replicas": "2"})
    admin = AdminClient({"bootstrap.servers": brokers.bootstrap_servers})
    with LoadProducer(brokers.bootstrap_servers, "zk-away", 3) as load:
        load.wait_for_more(300, "records before ZooKeeper stops")
        zookeeper.stop()
        try:
            started = time.monotonic()
            pending = admin.create_topics([NewTopic("made-while-away", 3, 3)], operation_timeout=30, request_timeout=30)
            load.wait_for_more(300, "records while a CreateTopics waits for ZooKeeper")
            with pytest.raises(confluent_kafka.KafkaException) as refused:
                pending["made-while-away"].result(timeout=60)
            took = time.monotonic() - started
            assert refused.value.args[0].code() == confluent_kafka.KafkaError.REQUEST_TIMED_OUT, refused.value
            assert "ZooKeeper" in refused.value.args[0].str()
            assert took < 20, f"CreateTopics was answered after {took:.1f} s"
        finally:
            zookeeper.start()
        load.wait_for_more(300, "records after ZooKeeper is back")
    # The controller's ZooKeeper client may reconnect a few seconds after ZooKeeper answers again
    # (one attempt can wait out its connect timeout during ZooKeeper's start-up); until then the
    # answer is the retriable REQUEST_TIMED_OUT, and a user retries, as here.
    deadline = time.monotonic() + 60
    while True:
        try:
            create_replicated_topic(brokers.bootstrap_servers, "made-after", 3)
            break
        except confluent_kafka.KafkaException as error:
            if error.args[0].code() == confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                break  # an attempt that timed out reached ZooKeeper after all
            if error.args[0].code() != confluent_kafka.KafkaError.REQUEST_TIMED_OUT or time.monotonic() > deadline:
                raise
    brokers.wait_for(lambda: all(leader >= 0 for leader, _, _ in describe(brokers.bootstrap_servers, "made-after").values()),
                     30, "leaders for the topic made after ZooKeeper came back")
    assert_all_acknowledged_readable(brokers.bootstrap_servers, load)


@contextlib.contextmanager
def registering_while_zookeeper_is_away(brokers, zookeeper):
    """Broker 2 starts while a live session holds /brokers/ids/2 (as a crashed broker's does until
    it expires), so it is still registering when ZooKeeper stops; yields it 3 s into the outage,
    then starts ZooKeeper again and ends the holding session (its node goes)."""
    holder = brokers.zk()
    holder.create("/brokers/ids/2", b"{}", ephemeral=True)
    try:
        broker = brokers.add_broker(2)
        zookeeper.stop()
        try:
            time.sleep(3)
            assert broker.running, broker.output()[-3000:]
            yield broker
        finally:
            zookeeper.start()
    finally:
        brokers.wait_for(lambda: holder.connected, 30, "the holder of the broker id reconnected")
        holder.stop()
        holder.close()


def test_a_broker_that_loses_zookeeper_while_registering_joins_once_it_is_back(cluster, zookeeper):
    """A broker restarted just as ZooKeeper went away used to exit with a ConnectionLoss traceback
    from its registration (seen in the chaos test). Kafka's broker waits for ZooKeeper instead:
    registration is tried again until ZooKeeper answers, and the broker then joins the cluster."""
    brokers = cluster(1)
    with registering_while_zookeeper_is_away(brokers, zookeeper) as broker:
        pass
    brokers.wait_for(lambda: "Registered broker 2" in broker.output(), 60, "broker 2 registered")
    brokers.wait_until_formed()
    create_replicated_topic(brokers.bootstrap_servers, "joined", 2, replication_factor=2)
    brokers.wait_for(lambda: all(sorted(isr) == [1, 2] for _, _, isr in describe(brokers.bootstrap_servers, "joined").values()),
                     30, "both brokers in every ISR")
    assert "Traceback" not in broker.output()


def test_sigterm_while_a_broker_waits_for_zookeeper_to_register_stops_it_cleanly(cluster, zookeeper):
    """Told to stop while its registration waits for ZooKeeper, a broker stops at once with exit
    code 0 instead of waiting (kazoo would hold the call until ZooKeeper answers)."""
    brokers = cluster(1)
    with registering_while_zookeeper_is_away(brokers, zookeeper) as broker:
        started = time.monotonic()
        assert broker.stop(timeout_s=30) == 0, broker.output()[-3000:]
        assert time.monotonic() - started < 10, broker.output()[-3000:]
    assert "Traceback" not in broker.output()


def test_topic_configs_changed_on_one_broker_apply_on_every_broker(cluster):
    brokers = cluster(3)
    create_replicated_topic(brokers.bootstrap_servers, "configured", 3)
    admin = AdminClient({"bootstrap.servers": brokers.broker(1).bootstrap_servers})
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, "configured", incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)

    async def described_by_every_broker() -> list[str]:  # each answers from its own view of ZooKeeper
        async with KafkaClient(brokers.bootstrap_servers) as client:
            values = []
            for node_id in (1, 2, 3):
                response = await client.request(DESCRIBE_CONFIGS, {"resources": [{
                    "resource_type": 2, "resource_name": "configured", "configuration_keys": ["max.message.bytes"]}]},
                    node_id=node_id)
                values.extend(c.value for c in response.results[0].configs)
            return values

    brokers.wait_for(lambda: asyncio.run(described_by_every_broker()) == ["2000"] * 3, 10, "every broker describing the new max.message.bytes")
    producer = confluent_kafka.Producer({"bootstrap.servers": brokers.bootstrap_servers, "message.timeout.ms": 10000,
                                         "compression.type": "none", "linger.ms": 0})
    errors = []
    for partition in range(3):  # every leader refuses a record above the new limit
        producer.produce("configured", value=b"x" * 5000, partition=partition,
                         on_delivery=lambda error, message: errors.append(error))
    producer.flush(30)
    assert len(errors) == 3 and all(e is not None and e.code() == confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE for e in errors), errors


def test_brokers_serve_clients_while_they_make_the_files_of_thousands_of_new_partitions(cluster):
    """Each broker makes 2,000 new replicas' files, seconds of directories on a slow disk. A producer
    to another topic has its records acknowledged meanwhile (by both replicas: acks=all), the big
    topic is usable once its files exist, and deleting it while they are being made leaves none."""
    brokers = cluster(2)
    create_replicated_topic(brokers.bootstrap_servers, "small", 2, replication_factor=2)
    partitions = 2000
    data_dirs = [broker.log_dir for broker in brokers.brokers.values()]

    def made() -> list[int]:
        return [sum(1 for name in os.listdir(d) if name.startswith("thousands-") and name[10:].isdigit())
                for d in data_dirs]

    admin = AdminClient({"bootstrap.servers": brokers.bootstrap_servers})
    producer = confluent_kafka.Producer({"bootstrap.servers": brokers.bootstrap_servers, "acks": "all",
                                         "linger.ms": 0})
    delivered = []
    for partition in range(2):  # connected and knowing the leaders first: what follows is one round trip
        producer.produce("small", b"before", partition=partition,
                         on_delivery=lambda error, message: delivered.append((error, None)))
    producer.flush(60)
    assert [error for error, _ in delivered] == [None, None]
    delivered.clear()
    created = admin.create_topics([NewTopic("thousands", num_partitions=partitions, replication_factor=2)],
                                  request_timeout=60, operation_timeout=60)["thousands"]
    brokers.wait_for(lambda: all(made()), 60, "both brokers making the new partitions' files")
    for partition in range(2):
        producer.produce("small", b"while thousands are made", partition=partition,
                         on_delivery=lambda error, message: delivered.append((error, made())))
    producer.flush(120)
    assert [error for error, _ in delivered] == [None, None]
    assert any(count < partitions for _, counts in delivered for count in counts), (
        f"the records waited for every file: {delivered}")
    assert created.result(timeout=60) is None

    brokers.wait_for(lambda: made() == [partitions, partitions], 120, "every replica's files made")
    producer.produce("thousands", b"last partition", partition=partitions - 1,
                     on_delivery=lambda error, message: delivered.append((error, None)))
    producer.flush(60)
    assert delivered[-1][0] is None
    assert sum(len(isr) == 2 for _, _, isr in describe(brokers.bootstrap_servers, "thousands").values()) == partitions

    admin.create_topics([NewTopic("again", num_partitions=partitions, replication_factor=2)],
                        request_timeout=60, operation_timeout=60)["again"].result(timeout=60)
    admin.delete_topics(["again"], request_timeout=60, operation_timeout=60)["again"].result(timeout=60)
    brokers.wait_for(
        lambda: not any(name.startswith("again-") for d in data_dirs for name in os.listdir(d)),
        120, "no file of the deleted topic left",
    )
