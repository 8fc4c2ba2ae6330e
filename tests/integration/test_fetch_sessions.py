"""Incremental fetch sessions (KIP-227) as a fetcher of many partitions uses them.

On the wire: a full fetch gets a session id; the session's next fetches name only what changed and
are answered with only the partitions that have something new; forgotten topics leave the session;
a repeated epoch, an unknown session and a closed one get Kafka's errors. With every slot taken by
a session too young to evict, a new client is answered without a session and keeps working with
full fetches. Then the clients that use sessions (kafka-python here, the Java client and franz-go in
tests/compat) read every record of many partitions through them.
"""

from __future__ import annotations

from datetime import timedelta

from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic, ForgottenTopic
from kio.schema.fetch.v16.request import FetchPartition as FetchPartitionById
from kio.schema.fetch.v16.request import FetchRequest as FetchRequestById
from kio.schema.fetch.v16.request import FetchTopic as FetchTopicById

from odradek.protocol.errors import ErrorCode

from .clients import Record, consume, create_topic, produce
from .wire import WireClient

TOPIC = "sessions"


def fetch(wire: WireClient, session_id: int, epoch: int, offsets: dict[int, int], forgotten: tuple[int, ...] = (),
          max_wait_ms: int = 100):
    """A Fetch v12 of TOPIC naming `offsets` (partition -> fetch offset)."""
    topics = (FetchTopic(topic=TOPIC, partitions=tuple(
        FetchPartition(partition=p, current_leader_epoch=-1, fetch_offset=o, last_fetched_epoch=-1, log_start_offset=-1,
                       partition_max_bytes=1 << 20) for p, o in offsets.items())),) if offsets else ()
    return wire.request(1, 12, FetchRequest(
        replica_id=-1, max_wait=timedelta(milliseconds=max_wait_ms), min_bytes=1, max_bytes=1 << 20,
        isolation_level=0, session_id=session_id, session_epoch=epoch, topics=topics,
        forgotten_topics_data=(ForgottenTopic(topic=TOPIC, partitions=forgotten),) if forgotten else (), rack_id=""))


def answered(response) -> dict[int, tuple[int, int]]:
    """partition -> (high watermark, bytes of records) of a fetch answer."""
    return {p.partition_index: (p.high_watermark, len(p.records or b"")) for t in response.responses for p in t.partitions}


def test_a_session_answers_only_what_changed(broker):
    create_topic(broker.bootstrap_servers, TOPIC, partitions=3)
    produce("confluent", broker.bootstrap_servers, TOPIC, [Record(None, b"first", partition=p) for p in range(3)])
    with WireClient(broker.bootstrap_servers) as wire:
        full = fetch(wire, 0, 0, {0: 0, 1: 0, 2: 0})
        session = full.session_id
        assert full.error_code == ErrorCode.none and session != 0
        assert {p: hw for p, (hw, size) in answered(full).items() if size > 0} == {0: 1, 1: 1, 2: 1}

        # the fetcher moves its offsets past what it read: nothing new, nothing answered
        quiet = fetch(wire, session, 1, {0: 1, 1: 1, 2: 1})
        assert (quiet.error_code, quiet.session_id, answered(quiet)) == (ErrorCode.none, session, {})

        produce("confluent", broker.bootstrap_servers, TOPIC, [Record(None, b"second", partition=1)])
        news = fetch(wire, session, 2, {})  # names nothing: the session remembers the offsets
        assert {p: hw for p, (hw, _) in answered(news).items()} == {1: 2} and answered(news)[1][1] > 0

        repeated = fetch(wire, session, 2, {})
        assert (repeated.error_code, repeated.session_id) == (ErrorCode.invalid_fetch_session_epoch, 0)

        # partition 0 leaves the session: a record there is no longer news for this fetcher
        produce("confluent", broker.bootstrap_servers, TOPIC, [Record(None, b"third", partition=0)])
        after_forget = fetch(wire, session, 3, {1: 2}, forgotten=(0,))
        assert answered(after_forget) == {}

        assert fetch(wire, 12345, 1, {}).error_code == ErrorCode.fetch_session_id_not_found
        closing = fetch(wire, session, -1, {1: 2})  # a full fetch that ends the session
        assert (closing.error_code, closing.session_id) == (ErrorCode.none, 0) and 1 in answered(closing)
        assert fetch(wire, session, 4, {}).error_code == ErrorCode.fetch_session_id_not_found


def test_a_session_by_topic_id_cannot_continue_by_name(broker):
    create_topic(broker.bootstrap_servers, TOPIC, partitions=1)
    with WireClient(broker.bootstrap_servers) as wire:
        topic_id = wire.request(3, 12, __import__("kio.schema.metadata.v12.request", fromlist=["MetadataRequest"])
                                .MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                                 include_topic_authorized_operations=False)).topics[0].topic_id
        full = wire.request(1, 16, FetchRequestById(
            max_wait=timedelta(milliseconds=10), min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0,
            session_epoch=0, topics=(FetchTopicById(topic_id=topic_id, partitions=(FetchPartitionById(
                partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1, log_start_offset=-1,
                partition_max_bytes=1 << 20),)),), forgotten_topics_data=(), rack_id=""))
        assert full.error_code == ErrorCode.none and full.session_id != 0
        assert fetch(wire, full.session_id, 1, {}).error_code == ErrorCode.fetch_session_topic_id_error


def test_without_a_free_slot_a_client_keeps_fetching_in_full(start_broker):
    broker = start_broker(**{"max.incremental.fetch.session.cache.slots": 1})
    create_topic(broker.bootstrap_servers, TOPIC, partitions=1)
    produce("confluent", broker.bootstrap_servers, TOPIC, [Record(None, b"only", partition=0)])
    with WireClient(broker.bootstrap_servers) as first, WireClient(broker.bootstrap_servers) as second:
        assert fetch(first, 0, 0, {0: 0}).session_id != 0
        crowded = fetch(second, 0, 0, {0: 0})
        assert crowded.error_code == ErrorCode.none and crowded.session_id == 0 and answered(crowded)[0][1] > 0


def test_a_session_using_client_reads_every_record_of_many_partitions(broker):
    """kafka-python keeps a fetch session per broker; 2,000 records over 20 partitions come back
    whole and in order per partition."""
    create_topic(broker.bootstrap_servers, "many", partitions=20)
    records = [Record(b"k%d" % i, b"v%d" % i, partition=i % 20) for i in range(2000)]
    produce("confluent", broker.bootstrap_servers, "many", records)
    received = consume("kafka-python", broker.bootstrap_servers, "many", range(20), len(records))
    assert sorted((m.partition, m.offset, m.value) for m in received) == sorted(
        (r.partition, i // 20, r.value) for i, r in enumerate(records))
