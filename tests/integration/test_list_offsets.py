"""Earliest, latest and by-timestamp offsets, as confluent-kafka and kafka-python ask for them."""

import confluent_kafka
import kafka

from .clients import Record, create_topic, produce

TIMESTAMPS_MS = [1000, 2000, 3000, 4000, 5000]


def topic_with_timestamps(bootstrap: str, topic: str) -> None:
    create_topic(bootstrap, topic)
    records = [Record(key=None, value=f"at {ts}".encode(), partition=0, timestamp_ms=ts) for ts in TIMESTAMPS_MS]
    produce("confluent", bootstrap, topic, records)


def confluent_consumer(bootstrap: str) -> confluent_kafka.Consumer:
    return confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "odradek-offsets", "enable.auto.commit": False}
    )


def test_confluent_watermarks_and_offsets_for_times(broker):
    create_topic(broker.bootstrap_servers, "empty")
    topic_with_timestamps(broker.bootstrap_servers, "timed")
    consumer = confluent_consumer(broker.bootstrap_servers)
    try:
        TP = confluent_kafka.TopicPartition
        assert consumer.get_watermark_offsets(TP("empty", 0), timeout=10) == (0, 0)
        assert consumer.get_watermark_offsets(TP("timed", 0), timeout=10) == (0, len(TIMESTAMPS_MS))

        def offset_for(timestamp_ms: int) -> int:
            (found,) = consumer.offsets_for_times([TP("timed", 0, timestamp_ms)], timeout=10)
            assert found.error is None
            return found.offset

        assert offset_for(2500) == 2  # the first message at or after 2500 is the one at 3000
        assert offset_for(3000) == 2
        assert offset_for(0) == 0
        assert offset_for(5000) == 4
        assert offset_for(5001) == -1  # no such message: OFFSET_END
    finally:
        consumer.close()


def test_kafka_python_beginning_end_and_offsets_for_times(broker):
    topic_with_timestamps(broker.bootstrap_servers, "timed")
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None)
    try:
        tp = kafka.TopicPartition("timed", 0)
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: len(TIMESTAMPS_MS)}
        found = consumer.offsets_for_times({tp: 2500})[tp]
        assert (found.offset, found.timestamp) == (2, 3000)
        assert consumer.offsets_for_times({tp: 5001}) == {tp: None}
    finally:
        consumer.close()
