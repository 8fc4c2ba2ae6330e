"""Consumer groups as users see them (issue 4): members share partitions, fail over, resume from
committed offsets across broker restarts, seek, and are administered; bad group requests get
Kafka's error codes and leave the group as it was.

Members that may be killed run in their own processes (`group_clients.GroupConsumer`), so
`kill -9` is real. Brokers start with `group.initial.rebalance.delay.ms=0` and members use the
smallest session timeout the broker allows (6 s), to keep the module fast.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Callable, Iterator

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from confluent_kafka.admin import AdminClient
from kio.schema.describe_groups.v3.request import DescribeGroupsRequest
from kio.schema.errors import ErrorCode
from kio.schema.heartbeat.v3.request import HeartbeatRequest
from kio.schema.join_group.v5.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.offset_commit.v7.request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kio.schema.offset_fetch.v5.request import OffsetFetchRequest, OffsetFetchRequestTopic
from kio.schema.sync_group.v3.request import SyncGroupRequest, SyncGroupRequestAssignment
from kio.static.primitive import i32, i64

from conftest import BrokerProcess

from .clients import Delivery, Record, create_topic, produce
from .group_clients import SESSION_TIMEOUT_MS, GroupConsumer, describe_all, finish_orphaned_kafka_python_join, wait_for
from .wire import WireClient

SESSION_TIMEOUT_S = SESSION_TIMEOUT_MS / 1000
# Time a rebalance may take on top of the session timeout: members learn of it on their next
# heartbeat (1 s) and rejoin; generous for a loaded CI machine.
REBALANCE_ALLOWANCE_S = 10.0
ASSIGN_TIMEOUT_S = 30.0
FAST_GROUPS = {"group.initial.rebalance.delay.ms": 0}
TIMESTAMP_BASE_MS = 1_700_000_000_000


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def group_broker(start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    return start_broker(**FAST_GROUPS)


@pytest.fixture
def members() -> Iterator[list[GroupConsumer]]:
    """Consumer processes started by a test; any still running are killed afterwards."""
    started: list[GroupConsumer] = []
    yield started
    for member in started:
        member.kill()


def start_member(members: list[GroupConsumer], *args, **kwargs) -> GroupConsumer:
    member = GroupConsumer(*args, **kwargs)
    members.append(member)
    return member


def records_for(partitions: int, per_partition: int, start: int = 0) -> list[Record]:
    return [
        Record(key=None, value=f"p{p}-m{i}".encode(), partition=p)
        for i in range(start, start + per_partition)
        for p in range(partitions)
    ]


def produced(topic: str, deliveries: list[Delivery]) -> set[tuple[str, int, int]]:
    return {(topic, d.partition, d.offset) for d in deliveries}


def all_partitions(topic: str, count: int) -> set[tuple[str, int]]:
    return {(topic, p) for p in range(count)}


def balanced(members: list[GroupConsumer], topic: str, partitions: int) -> bool:
    """Each member owns partitions/len(members) partitions, and together exactly all of them."""
    assignments = [m.assignment for m in members]
    owned = [tp for a in assignments for tp in a]
    return (
        all(len(a) == partitions // len(members) for a in assignments)
        and len(owned) == len(set(owned))
        and set(owned) == all_partitions(topic, partitions)
    )


def consumed_by_all(members: list[GroupConsumer]) -> Counter:
    return Counter(m for member in members for m in member.consumed())


def rebalance_lines(broker: BrokerProcess, group: str) -> list[str]:
    return [line for line in broker.output().splitlines() if re.search(rf"Preparing to rebalance group {re.escape(group)}\b", line)]


# --- 1. failover: three members, one killed ---------------------------------------------------


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "aiokafka"])
def test_three_members_share_six_partitions(group_broker, members, client):
    """With the client's default assignors, three members get two partitions each and together
    read every message, none again after it was committed (each commits every message it reads)."""
    topic, group = f"share-{client}", f"share-{client}"
    create_topic(group_broker.bootstrap_servers, topic, partitions=6)
    sent = produced(topic, produce("confluent", group_broker.bootstrap_servers, topic, records_for(6, 20)))

    trio = [start_member(members, client, group_broker.bootstrap_servers, group, [topic], name=f"{client}-{i}") for i in range(3)]
    wait_for(lambda: balanced(trio, topic, 6), ASSIGN_TIMEOUT_S, "2 partitions each", lambda: describe_all(trio))
    wait_for(lambda: set(consumed_by_all(trio)) >= sent, ASSIGN_TIMEOUT_S, "every message consumed", lambda: describe_all(trio))

    seen = consumed_by_all(trio)
    assert set(seen) == sent
    assert_reread_only_if_uncommitted(trio, seen)
    for member in trio:
        assert member.stop() == 0, member.describe()


def assert_reread_only_if_uncommitted(members: list[GroupConsumer], seen: Counter) -> None:
    """What the broker guarantees: a message is read a second time only if whoever read it first
    had not committed past it (a member that loses a partition in a rebalance between reading a
    batch and committing it hands those messages on: at-least-once, as with Kafka)."""
    read_at = {m.name: m.first_read_at() for m in members}
    for message, times in seen.items():
        if times == 1:
            continue
        topic, partition, offset = message
        first_reader = min((m for m in members if message in read_at[m.name]), key=lambda m: read_at[m.name][message])
        assert first_reader.committed().get((topic, partition), 0) <= offset, (
            f"{message} consumed {times} times although {first_reader.name} committed past it\n{describe_all(members)}"
        )


def test_group_rebalances_when_member_killed(group_broker, members):
    """kill -9 of one of three members: the other two own all six partitions within the session
    timeout plus a rebalance, and every message is consumed; a message is read twice only if the
    member that read it first had not committed it."""
    topic, group = "failover", "failover"
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, topic, partitions=6)
    sent = produced(topic, produce("confluent", bootstrap, topic, records_for(6, 20)))

    trio = [start_member(members, "confluent", bootstrap, group, [topic], name=f"member-{i}") for i in range(3)]
    wait_for(lambda: balanced(trio, topic, 6), ASSIGN_TIMEOUT_S, "2 partitions each", lambda: describe_all(trio))
    wait_for(lambda: set(consumed_by_all(trio)) >= sent, ASSIGN_TIMEOUT_S, "first messages consumed", lambda: describe_all(trio))

    # Keep producing while the member dies, so that it dies mid-stream.
    during: list[Delivery] = []

    def keep_producing() -> None:
        for round_ in range(20):
            during.extend(produce("confluent", bootstrap, topic, records_for(6, 5, start=1000 + 5 * round_), linger_ms=0))
            time.sleep(0.1)

    producer = threading.Thread(target=keep_producing)
    producer.start()
    victim, survivors = trio[0], trio[1:]
    wait_for(lambda: len(victim.consumed()) > 20 + 10, ASSIGN_TIMEOUT_S, "victim consumes new messages", victim.describe)
    victim_partitions = victim.assignment
    victim.kill()

    took_s = wait_for(
        lambda: balanced(survivors, topic, 6),
        SESSION_TIMEOUT_S + REBALANCE_ALLOWANCE_S,
        "survivors own all 6 partitions, 3 each",
        lambda: describe_all(trio),
    )
    producer.join()
    sent |= produced(topic, during)
    wait_for(lambda: set(consumed_by_all(trio)) >= sent, ASSIGN_TIMEOUT_S, "every message consumed", lambda: describe_all(trio))

    seen = consumed_by_all(trio)
    assert set(seen) == sent
    assert took_s <= SESSION_TIMEOUT_S + REBALANCE_ALLOWANCE_S, f"reassignment took {took_s:.1f} s after the kill"
    read_at = {m.name: m.first_read_at() for m in trio}
    for message, times in seen.items():
        if times == 1:
            continue
        topic_, partition, offset = message
        first_reader = min((m for m in trio if message in read_at[m.name]), key=lambda m: read_at[m.name][message])
        committed_past = first_reader.committed().get((topic_, partition), 0) > offset
        assert not committed_past, (
            f"{message} consumed {times} times although {first_reader.name} committed past it\n{describe_all(trio)}"
        )
        assert (topic_, partition) in victim_partitions or any(m.snapshot("commit_failed") for m in trio), (
            f"{message} consumed {times} times on a partition the killed member did not own\n{describe_all(trio)}"
        )
    for member in survivors:
        assert member.stop() == 0, member.describe()


# --- 2. cooperative-sticky --------------------------------------------------------------------


def test_cooperative_sticky_keeps_unmoved_partitions_assigned(group_broker, members):
    """A second member joins a cooperative-sticky group: the first is revoked only the
    partitions that move to the second, never the ones it keeps, and nothing is lost."""
    topic, group = "cooperative", "cooperative"
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, topic, partitions=6)
    config = {"partition.assignment.strategy": "cooperative-sticky"}

    first = start_member(members, "confluent", bootstrap, group, [topic], name="first", config=config)
    first.wait_for(lambda c: c.assignment == all_partitions(topic, 6), ASSIGN_TIMEOUT_S, "owns all 6 partitions")
    events_before = len(first.snapshot())
    second = start_member(members, "confluent", bootstrap, group, [topic], name="second", config=config)
    pair = [first, second]
    wait_for(lambda: balanced(pair, topic, 6), ASSIGN_TIMEOUT_S, "3 partitions each", lambda: describe_all(pair))

    kept = first.assignment
    moved = second.assignment
    assert first.partitions_in("lost") == [], first.describe()
    assert set(first.partitions_in("revoked")) == moved, first.describe()
    changes_after_join = [e for e in first.snapshot()[events_before:] if "assignment" in e]
    for event in changes_after_join:
        assert kept <= {tuple(p) for p in event["assignment"]}, f"a kept partition was unassigned: {event}\n{first.describe()}"
    assert [e for e in changes_after_join if e["event"] == "revoked" and kept & {tuple(p) for p in e["partitions"]}] == []
    assert all(e["partitions"] == [] for e in changes_after_join if e["event"] == "assigned"), first.describe()

    sent = produced(topic, produce("confluent", bootstrap, topic, records_for(6, 5)))
    wait_for(lambda: set(consumed_by_all(pair)) >= sent, ASSIGN_TIMEOUT_S, "messages consumed", lambda: describe_all(pair))
    assert {(t, p) for t, p, _ in first.consumed()} == kept
    assert {(t, p) for t, p, _ in second.consumed()} == moved


# --- 3. static membership ---------------------------------------------------------------------


def test_static_member_restart_gets_partitions_back_without_rebalance(group_broker, members):
    """A static member (group.instance.id) killed and restarted within its session timeout gets
    the same partitions back; the other member is not revoked anything and the broker does
    not prepare a rebalance, not even after the old session timeout has passed."""
    topic, group = "static", "static"
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, topic, partitions=6)

    leader = start_member(members, "confluent", bootstrap, group, [topic], name="a", config={"group.instance.id": "a"})
    leader.wait_for(lambda c: c.assignment == all_partitions(topic, 6), ASSIGN_TIMEOUT_S, "owns all 6 partitions")
    other = start_member(members, "confluent", bootstrap, group, [topic], name="b", config={"group.instance.id": "b"})
    pair = [leader, other]
    wait_for(lambda: balanced(pair, topic, 6), ASSIGN_TIMEOUT_S, "3 partitions each", lambda: describe_all(pair))
    leader_partitions, other_partitions = leader.assignment, other.assignment
    leader_events = len(leader.snapshot())
    rebalances_before = rebalance_lines(group_broker, group)
    assert len(rebalances_before) >= 2, "no rebalance logged when a and b joined: the log check below would prove nothing"

    other.kill()
    restarted = start_member(members, "confluent", bootstrap, group, [topic], name="b-restarted", config={"group.instance.id": "b"})
    took_s = restarted.wait_for(lambda c: c.assignment == other_partitions, SESSION_TIMEOUT_S, "gets b's partitions back")
    # Past the killed instance's session timeout: no late rebalance either.
    time.sleep(SESSION_TIMEOUT_S + 1 - took_s)

    assert [e for e in leader.snapshot()[leader_events:] if e["event"] not in ("message", "committed")] == [], leader.describe()
    assert leader.assignment == leader_partitions
    assert restarted.assignment == other_partitions
    assert restarted.partitions_in("revoked") == [] and restarted.partitions_in("lost") == []
    assert rebalance_lines(group_broker, group) == rebalances_before

    sent = produced(topic, produce("confluent", bootstrap, topic, records_for(6, 3)))
    wait_for(lambda: set(consumed_by_all([leader, restarted])) >= sent, ASSIGN_TIMEOUT_S, "new messages consumed",
             lambda: describe_all([leader, restarted]))
    assert {(t, p) for t, p, _ in restarted.consumed()} == other_partitions


# --- 4. committed offsets across broker restarts ----------------------------------------------


def _group_consumer(bootstrap: str, group: str, **extra: object) -> confluent_kafka.Consumer:
    return confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 1000,
            **extra,
        }
    )


def _poll_messages(consumer: confluent_kafka.Consumer, count: int, timeout_s: float = ASSIGN_TIMEOUT_S) -> list:
    messages = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        assert message.error() is None, message.error()
        messages.append(message)
    assert len(messages) == count, f"consumed {len(messages)} of {count} messages in {timeout_s} s"
    return messages


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_committed_offsets_survive_broker_restart(group_broker, how):
    """Offsets committed synchronously survive a broker restart; a new member of the group
    continues right after them: no message twice, none skipped."""
    topic, group = f"resume-{how}", f"resume-{how}"
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, topic, partitions=3)
    produce("confluent", bootstrap, topic, records_for(3, 30))

    first = _group_consumer(bootstrap, group)
    first.subscribe([topic])
    before = _poll_messages(first, 50)
    for message in before:
        first.commit(message=message, asynchronous=False)
    committed = {tp.partition: tp.offset for tp in first.committed([ConfluentTopicPartition(topic, p) for p in range(3)], timeout=10)}
    first.close()
    expected_committed = {p: max((m.offset() + 1 for m in before if m.partition() == p), default=-1001) for p in range(3)}
    assert committed == expected_committed

    if how == "sigterm":
        assert group_broker.stop() == 0
    else:
        group_broker.kill()
    group_broker.start()

    second = _group_consumer(bootstrap, group)
    try:
        after_restart = {
            tp.partition: tp.offset
            for tp in second.committed([ConfluentTopicPartition(topic, p) for p in range(3)], timeout=20)
        }
        assert after_restart == committed
        second.subscribe([topic])
        after = _poll_messages(second, 40)
        extra = second.poll(1.0)
        assert extra is None, f"an extra message: partition {extra.partition()} offset {extra.offset()}"
    finally:
        second.close()

    first_read = {(m.partition(), m.offset()) for m in before}
    second_read = [(m.partition(), m.offset()) for m in after]
    assert len(second_read) == len(set(second_read)) == 40
    assert first_read.isdisjoint(second_read), "messages read again after the restart"
    assert first_read | set(second_read) == {(p, o) for p in range(3) for o in range(30)}
    for partition in range(3):
        offsets = sorted(o for p, o in second_read if p == partition)
        if offsets:
            assert offsets[0] == max(committed[partition], 0), f"partition {partition} resumed at {offsets[0]}"


# --- 5. KIP-848 -------------------------------------------------------------------------------


def test_kip848_consumer_protocol_join_assign_leave_reassign(group_broker, members):
    """librdkafka with group.protocol=consumer: the first member gets all partitions, a second
    takes half of them (revoked incrementally from the first), and when it leaves the first
    gets them back."""
    topic, group = "kip848", "kip848"
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, topic, partitions=6)
    config = {"group.protocol": "consumer"}

    first = start_member(members, "confluent", bootstrap, group, [topic], name="first", config=config, session_timeout_ms=None)
    first.wait_for(lambda c: c.assignment == all_partitions(topic, 6), ASSIGN_TIMEOUT_S, "owns all 6 partitions")
    second = start_member(members, "confluent", bootstrap, group, [topic], name="second", config=config, session_timeout_ms=None)
    pair = [first, second]
    wait_for(lambda: balanced(pair, topic, 6), ASSIGN_TIMEOUT_S, "3 partitions each", lambda: describe_all(pair))
    kept = first.assignment
    assert not kept & set(first.partitions_in("revoked")), first.describe()
    # The members really use the consumer protocol, not a fallback to the classic one.
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    assert description.type == confluent_kafka.ConsumerGroupType.CONSUMER
    assert description.state == confluent_kafka.ConsumerGroupState.STABLE
    assert sorted(sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) for m in description.members) == sorted(
        sorted(m.assignment) for m in pair
    )
    assert rebalance_lines(group_broker, group) == []

    sent = produced(topic, produce("confluent", bootstrap, topic, records_for(6, 5)))
    wait_for(lambda: set(consumed_by_all(pair)) >= sent, ASSIGN_TIMEOUT_S, "messages consumed", lambda: describe_all(pair))

    assert second.stop() == 0
    first.wait_for(lambda c: c.assignment == all_partitions(topic, 6), ASSIGN_TIMEOUT_S, "owns all 6 partitions again")
    more = produced(topic, produce("confluent", bootstrap, topic, records_for(6, 5, start=5)))
    first.wait_for(lambda c: set(c.consumed()) >= more, ASSIGN_TIMEOUT_S, "consumes the partitions it got back")


def test_kip848_regex_subscription_gets_matching_topics_and_later_ones(group_broker):
    """librdkafka with group.protocol=consumer subscribing to "^orders-.*" sends the regex to the
    broker (SubscribedTopicRegex), which resolves it: every matching topic is consumed, others are
    not, and a matching topic created later joins the subscription."""
    bootstrap = group_broker.bootstrap_servers
    for topic, partitions in (("orders-eu", 2), ("orders-us", 1), ("payments", 1)):
        create_topic(bootstrap, topic, partitions=partitions)
    for topic in ("orders-eu", "orders-us", "payments"):
        produce("confluent", bootstrap, topic, [Record(None, topic.encode(), partition=0)])
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "regex-group",
                                         "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    consumer.subscribe(["^orders-.*"])
    seen: set[str] = set()

    def poll_until(wanted: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not wanted <= seen and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.add(message.value().decode())

    try:
        poll_until({"orders-eu", "orders-us"}, ASSIGN_TIMEOUT_S)
        assert seen == {"orders-eu", "orders-us"}
        create_topic(bootstrap, "orders-apac", partitions=1)
        produce("confluent", bootstrap, "orders-apac", [Record(None, b"orders-apac", partition=0)])
        poll_until({"orders-apac"}, ASSIGN_TIMEOUT_S)
        assert seen == {"orders-eu", "orders-us", "orders-apac"}  # never payments
    finally:
        consumer.close()


def test_kip848_consumer_commits_without_subscribing(group_broker):
    """librdkafka with group.protocol=consumer and no subscription commits with OffsetCommit v9,
    generation -1 and its own member id. Kafka accepts a generation below 0 for an empty or
    missing group whatever the member id; the commit used to fail with ILLEGAL_GENERATION and
    the next start fell back to auto.offset.reset."""
    topic, group = "kip848-manual", "kip848-manual"
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, topic, partitions=2)
    config = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer", "enable.auto.commit": False}
    consumer = confluent_kafka.Consumer(config)
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
        committed = consumer.commit(offsets=[confluent_kafka.TopicPartition(topic, 0, 5),
                                             confluent_kafka.TopicPartition(topic, 1, 3)], asynchronous=False)
        assert [tp.error for tp in committed] == [None, None], committed
    finally:
        consumer.close()
    later = confluent_kafka.Consumer(config)
    try:
        offsets = later.committed([confluent_kafka.TopicPartition(topic, 0), confluent_kafka.TopicPartition(topic, 1)], timeout=15)
        assert [(tp.partition, tp.offset) for tp in offsets] == [(0, 5), (1, 3)]
    finally:
        later.close()


# --- 6. seek and rewind -----------------------------------------------------------------------


SEEK_MESSAGES = 100


def _timestamped_topic(bootstrap: str, topic: str) -> None:
    create_topic(bootstrap, topic, partitions=1)
    produce(
        "confluent",
        bootstrap,
        topic,
        [Record(None, f"m{i}".encode(), 0, timestamp_ms=TIMESTAMP_BASE_MS + 1000 * i) for i in range(SEEK_MESSAGES)],
    )


def test_seek_rewind_confluent(group_broker):
    """A group member reads everything, then seeks to the beginning, to an offset and to a
    timestamp found with offsets_for_times; a commit after rewinding moves the offset back."""
    topic = group = "seek-confluent"
    bootstrap = group_broker.bootstrap_servers
    _timestamped_topic(bootstrap, topic)
    consumer = _group_consumer(bootstrap, group)
    try:
        consumer.subscribe([topic])
        assert [m.offset() for m in _poll_messages(consumer, SEEK_MESSAGES)] == list(range(SEEK_MESSAGES))

        consumer.seek(ConfluentTopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING))
        assert [m.offset() for m in _poll_messages(consumer, 3)] == [0, 1, 2]

        consumer.seek(ConfluentTopicPartition(topic, 0, 42))
        message = _poll_messages(consumer, 1)[0]
        assert (message.offset(), message.value()) == (42, b"m42")
        consumer.commit(message=message, asynchronous=False)
        [committed] = consumer.committed([ConfluentTopicPartition(topic, 0)], timeout=10)
        assert committed.offset == 43

        [exact] = consumer.offsets_for_times([ConfluentTopicPartition(topic, 0, TIMESTAMP_BASE_MS + 57_000)], timeout=10)
        [between] = consumer.offsets_for_times([ConfluentTopicPartition(topic, 0, TIMESTAMP_BASE_MS + 57_500)], timeout=10)
        [beyond] = consumer.offsets_for_times(
            [ConfluentTopicPartition(topic, 0, TIMESTAMP_BASE_MS + 1000 * SEEK_MESSAGES)], timeout=10
        )
        assert (exact.offset, between.offset, beyond.offset) == (57, 58, confluent_kafka.OFFSET_END)
        consumer.seek(exact)
        message = _poll_messages(consumer, 1)[0]
        assert message.offset() == 57
        assert message.timestamp() == (confluent_kafka.TIMESTAMP_CREATE_TIME, TIMESTAMP_BASE_MS + 57_000)
    finally:
        consumer.close()


def test_seek_rewind_kafka_python(group_broker):
    """The same with kafka-python: seek_to_beginning, seek, offsets_for_times."""
    import kafka

    topic = group = "seek-kafka-python"
    bootstrap = group_broker.bootstrap_servers
    _timestamped_topic(bootstrap, topic)
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=1000,
    )
    tp = kafka.TopicPartition(topic, 0)

    def poll(count: int) -> list:
        records: list = []
        deadline = time.monotonic() + ASSIGN_TIMEOUT_S
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200, max_records=count - len(records)).values():
                records.extend(batch)
            finish_orphaned_kafka_python_join(consumer)
        assert len(records) == count, f"consumed {len(records)} of {count}"
        return records

    try:
        consumer.subscribe([topic])
        assert [r.offset for r in poll(SEEK_MESSAGES)] == list(range(SEEK_MESSAGES))

        consumer.seek_to_beginning(tp)
        assert [r.offset for r in poll(3)] == [0, 1, 2]

        consumer.seek(tp, 42)
        record = poll(1)[0]
        assert (record.offset, record.value) == (42, b"m42")
        consumer.commit({tp: kafka.OffsetAndMetadata(43, "", -1)})
        assert consumer.committed(tp) == 43

        found = consumer.offsets_for_times({tp: TIMESTAMP_BASE_MS + 57_000})[tp]
        between = consumer.offsets_for_times({tp: TIMESTAMP_BASE_MS + 57_500})[tp]
        beyond = consumer.offsets_for_times({tp: TIMESTAMP_BASE_MS + 1000 * SEEK_MESSAGES})[tp]
        assert (found.offset, found.timestamp) == (57, TIMESTAMP_BASE_MS + 57_000)
        assert between.offset == 58
        assert beyond is None
        consumer.seek(tp, found.offset)
        record = poll(1)[0]
        assert (record.offset, record.timestamp) == (57, TIMESTAMP_BASE_MS + 57_000)
    finally:
        consumer.close()


# --- 7. admin ---------------------------------------------------------------------------------


def test_admin_lists_describes_and_deletes_groups(group_broker, members):
    """kafka-python's and confluent-kafka's admin clients see a Stable group with its members,
    assignments and committed offsets; deleting it fails with NON_EMPTY_GROUP while members are
    in it and succeeds once they have closed."""
    kafka = pytest.importorskip("kafka", minversion="3", reason="written for kafka-python 3's admin API (list_groups, ...)")
    from kafka.admin import KafkaAdminClient

    topic, group = "administered", "administered"
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, topic, partitions=6)
    sent = produced(topic, produce("confluent", bootstrap, topic, records_for(6, 10)))
    pair = [start_member(members, "confluent", bootstrap, group, [topic], name=f"member-{i}") for i in range(2)]
    wait_for(lambda: balanced(pair, topic, 6), ASSIGN_TIMEOUT_S, "3 partitions each", lambda: describe_all(pair))
    wait_for(
        lambda: {tp: o for m in pair for tp, o in m.committed().items()} == {tp: 10 for tp in all_partitions(topic, 6)},
        ASSIGN_TIMEOUT_S,
        "every message committed",
        lambda: describe_all(pair),
    )
    assert set(consumed_by_all(pair)) == sent
    assignments = {m.name: m.assignment for m in pair}

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed[group]["protocol_type"] == "consumer"

        described = admin.describe_groups([group])[group]
        assert described["error"] is None
        assert (described["group_state"], described["protocol_type"]) == ("Stable", "consumer")
        assert len(described["members"]) == 2
        # kafka-python decodes each member's ConsumerProtocolAssignment into a dict.
        described_assignments = sorted(
            sorted((t["topic"], p) for t in m["member_assignment"]["assigned_partitions"] for p in t["partitions"])
            for m in described["members"]
        )
        assert described_assignments == sorted(sorted(a) for a in assignments.values())

        offsets = admin.list_group_offsets(group)[group]
        assert {(tp.topic, tp.partition): o.offset for tp, o in offsets.items()} == {tp: 10 for tp in all_partitions(topic, 6)}

        confluent_admin = AdminClient({"bootstrap.servers": bootstrap})
        listing = confluent_admin.list_consumer_groups(request_timeout=10).result(timeout=15)
        assert listing.errors == []
        [ours] = [g for g in listing.valid if g.group_id == group]
        assert ours.state == confluent_kafka.ConsumerGroupState.STABLE
        description = confluent_admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        assert description.state == confluent_kafka.ConsumerGroupState.STABLE
        assert sorted(sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) for m in description.members) == sorted(
            sorted(a) for a in assignments.values()
        )

        assert admin.delete_groups([group]) == {group: kafka.errors.NonEmptyGroupError.__name__}
        assert admin.describe_groups([group])[group]["group_state"] == "Stable"

        for member in pair:
            assert member.stop() == 0, member.describe()
        assert admin.describe_groups([group])[group]["group_state"] == "Empty"
        assert admin.delete_groups([group]) == {group: "OK"}
        assert group not in {g["group_id"] for g in admin.list_groups()}
        assert admin.list_group_offsets(group)[group] == {}
        assert admin.delete_groups([group]) == {group: kafka.errors.GroupIdNotFoundError.__name__}
    finally:
        admin.close()


# --- 8. bad input -----------------------------------------------------------------------------
#
# Sent with the raw wire client: no real client sends these on purpose. One member forms a
# group with a raw JoinGroup/SyncGroup; every bad request must leave it Stable, with the same
# member, generation, assignment and committed offset.

RAW_TOPIC = "raw-group-topic"
RAW_SESSION_MS = 30_000
ASSIGNMENT = b"\x00\x00\x00\x00\x00\x01\x00\x0fraw-group-topic\x00\x00\x00\x01\x00\x00\x00\x00\xff\xff\xff\xff"
SUBSCRIPTION = b"\x00\x00\x00\x00\x00\x01\x00\x0fraw-group-topic\xff\xff\xff\xff"


def join(client: WireClient, group: str, member_id: str = "", *, instance_id: str | None = None,
         protocol_type: str = "consumer", protocols=(("range", SUBSCRIPTION),), session_ms: int = RAW_SESSION_MS):
    return client.request(11, 5, JoinGroupRequest(
        group_id=group,
        session_timeout=timedelta(milliseconds=session_ms),
        rebalance_timeout=timedelta(milliseconds=RAW_SESSION_MS),
        member_id=member_id,
        group_instance_id=instance_id,
        protocol_type=protocol_type,
        protocols=tuple(JoinGroupRequestProtocol(name=n, metadata=m) for n, m in protocols),
    ))


def sync(client: WireClient, group: str, generation: int, member_id: str, assignments=(), instance_id: str | None = None):
    return client.request(14, 3, SyncGroupRequest(
        group_id=group, generation_id=i32(generation), member_id=member_id, group_instance_id=instance_id,
        assignments=tuple(SyncGroupRequestAssignment(member_id=m, assignment=a) for m, a in assignments),
    ))


def heartbeat(client: WireClient, group: str, generation: int, member_id: str, instance_id: str | None = None):
    return client.request(12, 3, HeartbeatRequest(
        group_id=group, generation_id=i32(generation), member_id=member_id, group_instance_id=instance_id,
    ))


def commit(client: WireClient, group: str, generation: int, member_id: str, offset: int, instance_id: str | None = None):
    response = client.request(8, 7, OffsetCommitRequest(
        group_id=group, generation_id_or_member_epoch=i32(generation), member_id=member_id, group_instance_id=instance_id,
        topics=(OffsetCommitRequestTopic(name=RAW_TOPIC, partitions=(
            OffsetCommitRequestPartition(partition_index=i32(0), committed_offset=i64(offset), committed_metadata=""),
        )),),
    ))
    [topic] = response.topics
    [partition] = topic.partitions
    return partition.error_code


def committed_offset(client: WireClient, group: str) -> int:
    response = client.request(9, 5, OffsetFetchRequest(
        group_id=group, topics=(OffsetFetchRequestTopic(name=RAW_TOPIC, partition_indexes=(i32(0),)),),
    ))
    assert response.error_code == ErrorCode.none
    return response.topics[0].partitions[0].committed_offset


def describe(client: WireClient, group: str):
    [described] = client.request(15, 3, DescribeGroupsRequest(groups=(group,), include_authorized_operations=False)).groups
    return (
        described.error_code, described.group_state, described.protocol_type, described.protocol_data,
        sorted((m.member_id, m.member_assignment) for m in described.members),
    )


def form_group(client: WireClient, group: str, instance_id: str | None = None) -> tuple[str, int]:
    """A one-member Stable group; returns (member id, generation)."""
    first = join(client, group, instance_id=instance_id)
    if first.error_code == ErrorCode.member_id_required:
        first = join(client, group, first.member_id, instance_id=instance_id)
    assert first.error_code == ErrorCode.none, first
    assert first.leader == first.member_id
    synced = sync(client, group, first.generation_id, first.member_id, [(first.member_id, ASSIGNMENT)], instance_id)
    assert synced.error_code == ErrorCode.none and synced.assignment == ASSIGNMENT
    return first.member_id, first.generation_id


@pytest.fixture(scope="module")
def shared_raw_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the bad-input tests (each uses its own group): starting one takes seconds."""
    broker = BrokerProcess(tmp_path_factory.mktemp("raw-groups-broker"), dict(FAST_GROUPS)).start()
    create_topic(broker.bootstrap_servers, RAW_TOPIC, partitions=1)
    with WireClient(broker.bootstrap_servers) as client:
        client.find_coordinator("raw")  # what every client asks first: it creates __consumer_offsets
    yield broker
    assert broker.stop() == 0, f"the shared broker did not shut down cleanly\n{broker.output()}"


@pytest.fixture
def raw_broker(request: pytest.FixtureRequest, shared_raw_broker: BrokerProcess) -> BrokerProcess:
    """The module's broker, attached to the test so that a failure report carries its log."""
    request.node._odradek_brokers = [shared_raw_broker]
    assert shared_raw_broker.running, "the shared broker died in an earlier test"
    return shared_raw_broker


@pytest.fixture
def raw_group(request: pytest.FixtureRequest, raw_broker: BrokerProcess) -> Iterator[tuple[WireClient, str, str, int]]:
    with WireClient(raw_broker.bootstrap_servers) as client:
        group = f"raw-{request.node.name}"
        member_id, generation = form_group(client, group)
        assert commit(client, group, generation, member_id, 7) == ErrorCode.none
        yield client, group, member_id, generation


def assert_untouched(client: WireClient, group: str, member_id: str, generation: int) -> None:
    assert describe(client, group) == (ErrorCode.none, "Stable", "consumer", "range", [(member_id, ASSIGNMENT)])
    assert heartbeat(client, group, generation, member_id).error_code == ErrorCode.none
    assert committed_offset(client, group) == 7


def test_commit_from_unknown_member_or_stale_generation_is_refused(raw_group):
    client, group, member_id, generation = raw_group
    assert commit(client, group, generation, "no-such-member", 99) == ErrorCode.unknown_member_id
    assert commit(client, group, generation - 1, member_id, 99) == ErrorCode.illegal_generation
    assert commit(client, group, generation + 1, member_id, 99) == ErrorCode.illegal_generation
    assert_untouched(client, group, member_id, generation)


def test_join_with_bad_protocols_or_group_id_or_session_timeout_is_refused(raw_group):
    client, group, member_id, generation = raw_group
    assert join(client, "fresh-group", protocols=()).error_code == ErrorCode.inconsistent_group_protocol
    assert join(client, group, protocols=()).error_code == ErrorCode.inconsistent_group_protocol
    assert join(client, group, protocol_type="connect").error_code == ErrorCode.inconsistent_group_protocol
    assert join(client, group, protocols=(("roundrobin", SUBSCRIPTION),)).error_code == ErrorCode.inconsistent_group_protocol
    assert join(client, "").error_code == ErrorCode.invalid_group_id
    assert join(client, group, session_ms=5999).error_code == ErrorCode.invalid_session_timeout
    assert join(client, group, member_id, session_ms=5999).error_code == ErrorCode.invalid_session_timeout
    assert_untouched(client, group, member_id, generation)


def test_sync_and_heartbeat_with_wrong_generation_are_refused(raw_group):
    client, group, member_id, generation = raw_group
    assert heartbeat(client, group, generation + 1, member_id).error_code == ErrorCode.illegal_generation
    assert heartbeat(client, group, generation - 1, member_id).error_code == ErrorCode.illegal_generation
    assert heartbeat(client, group, generation, "no-such-member").error_code == ErrorCode.unknown_member_id
    assert sync(client, group, generation + 1, member_id, [(member_id, b"")]).error_code == ErrorCode.illegal_generation
    assert sync(client, group, generation, "no-such-member").error_code == ErrorCode.unknown_member_id
    assert_untouched(client, group, member_id, generation)


@pytest.fixture
def restarted_static_member(
    request: pytest.FixtureRequest, raw_broker: BrokerProcess
) -> Iterator[tuple[WireClient, str, str, str, str, int]]:
    """A one-member static group whose instance rejoined with a new member id:
    (client, group, instance id, stale member id, current member id, generation)."""
    group, instance = f"raw-{request.node.name}", "instance-1"
    with WireClient(raw_broker.bootstrap_servers) as client:
        stale_id, _generation = form_group(client, group, instance)
        rejoined = join(client, group, instance_id=instance)
        assert rejoined.error_code == ErrorCode.none
        current_id, generation = rejoined.member_id, rejoined.generation_id
        assert current_id != stale_id
        # It leads (the only member), so it hands out the assignment again.
        resynced = sync(client, group, generation, current_id, [(current_id, ASSIGNMENT)], instance)
        assert resynced.assignment == ASSIGNMENT
        assert commit(client, group, generation, current_id, 7, instance) == ErrorCode.none
        yield client, group, instance, stale_id, current_id, generation


def assert_static_untouched(client: WireClient, group: str, instance: str, member_id: str, generation: int) -> None:
    assert describe(client, group) == (ErrorCode.none, "Stable", "consumer", "range", [(member_id, ASSIGNMENT)])
    assert heartbeat(client, group, generation, member_id, instance).error_code == ErrorCode.none
    assert committed_offset(client, group) == 7


def test_static_member_with_stale_member_id_is_fenced(restarted_static_member):
    """A static member that restarted got a new member id; Heartbeat, SyncGroup and
    OffsetCommit with the old one are fenced."""
    client, group, instance, stale_id, current_id, generation = restarted_static_member
    assert heartbeat(client, group, generation, stale_id, instance).error_code == ErrorCode.fenced_instance_id
    assert sync(client, group, generation, stale_id, instance_id=instance).error_code == ErrorCode.fenced_instance_id
    assert commit(client, group, generation, stale_id, 99, instance) == ErrorCode.fenced_instance_id
    assert_static_untouched(client, group, instance, current_id, generation)


def test_static_member_join_with_stale_member_id_is_fenced(restarted_static_member):
    """Kafka checks the instance's fencing before the member id's existence, so the old
    incarnation learns it was replaced (and stops) instead of rejoining as a new member."""
    client, group, instance, stale_id, current_id, generation = restarted_static_member
    assert join(client, group, stale_id, instance_id=instance).error_code == ErrorCode.fenced_instance_id
    assert_static_untouched(client, group, instance, current_id, generation)
