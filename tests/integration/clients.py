"""The three Python Kafka clients behind one shape, so a scenario runs unchanged with each.

`produce(client, bootstrap, topic, records, ...)` sends `Record`s, waits for every
acknowledgement and returns one `Delivery` (partition, offset) per record, in input order; any
delivery error raises `DeliveryFailed`. `consume(client, bootstrap, topic, partitions, count)`
reads from the beginning of the given partitions with manual assignment (no consumer groups)
until `count` messages arrived, and raises `ConsumeTimeout` (with the client's errors) when
they do not arrive in time, so a broker bug fails a test instead of hanging it.

Admin helpers use confluent-kafka's AdminClient, as a user would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

CLIENTS = ["confluent", "kafka-python", "aiokafka"]
DEFAULT_TIMEOUT_S = 30.0
CREATE_TIME = "CreateTime"
LOG_APPEND_TIME = "LogAppendTime"

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Record:
    """A message to produce. `partition=None` leaves the choice to the client's partitioner."""

    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Headers = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Delivery:
    partition: int
    offset: int


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int
    timestamp_type: str

    def as_record(self) -> Record:
        return Record(self.key, self.value, self.partition, self.headers, self.timestamp_ms)


class DeliveryFailed(AssertionError):
    def __init__(self, client: str, errors: list[tuple[int, str]]):
        self.errors = errors
        shown = ", ".join(f"record {i}: {e}" for i, e in errors[:5])
        super().__init__(f"{client}: {len(errors)} deliveries failed: {shown}")


class ConsumeTimeout(AssertionError):
    pass


@dataclass
class ProducerOptions:
    """Client-neutral producer settings, translated to each client's config names."""

    acks: str = "all"
    idempotent: bool = False
    compression: str | None = None
    max_request_bytes: int | None = None
    linger_ms: int = 5
    extra: dict[str, object] = field(default_factory=dict)


def produce(
    client: str,
    bootstrap: str,
    topic: str,
    records: Sequence[Record],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **options: object,
) -> list[Delivery]:
    opts = ProducerOptions(**options)  # type: ignore[arg-type]
    if client == "confluent":
        return _produce_confluent(bootstrap, topic, records, opts, timeout_s)
    if client == "kafka-python":
        return _produce_kafka_python(bootstrap, topic, records, opts, timeout_s)
    if client == "aiokafka":
        return asyncio.run(_produce_aiokafka(bootstrap, topic, records, opts, timeout_s))
    raise ValueError(f"unknown client {client!r}; expected one of {CLIENTS}")


def consume(
    client: str,
    bootstrap: str,
    topic: str,
    partitions: Iterable[int],
    count: int,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **config: object,
) -> list[Consumed]:
    """Read `count` messages from the start of `partitions`; `config` is passed to the client as is."""
    partitions = list(partitions)
    if client == "confluent":
        return _consume_confluent(bootstrap, topic, partitions, count, timeout_s, config)
    if client == "kafka-python":
        return _consume_kafka_python(bootstrap, topic, partitions, count, timeout_s, config)
    if client == "aiokafka":
        return asyncio.run(_consume_aiokafka(bootstrap, topic, partitions, count, timeout_s, config))
    raise ValueError(f"unknown client {client!r}; expected one of {CLIENTS}")


def by_partition(messages: Iterable[Consumed]) -> dict[int, list[Consumed]]:
    grouped: dict[int, list[Consumed]] = {}
    for message in messages:
        grouped.setdefault(message.partition, []).append(message)
    return grouped


# --- admin (confluent-kafka AdminClient) ---


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(
    bootstrap: str,
    topic: str,
    partitions: int = 1,
    config: dict[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> None:
    new_topic = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
    client = admin(bootstrap)  # must outlive the futures: destroying it fails them with _DESTROY
    futures = client.create_topics([new_topic], operation_timeout=timeout_s, request_timeout=timeout_s)
    futures[topic].result(timeout=timeout_s)


def topic_partitions(bootstrap: str, topic: str, timeout_s: float = 10.0) -> dict[int, object] | None:
    """The topic's partitions from a metadata request for all topics, or None if it does not exist.

    Asking for all topics (not this one) so that the request cannot auto-create it.
    """
    metadata = admin(bootstrap).list_topics(timeout=timeout_s)
    found = metadata.topics.get(topic)
    if found is None:
        return None
    if found.error is not None:
        raise AssertionError(f"metadata for {topic!r} has error {found.error}")
    return dict(found.partitions)


def high_watermarks(bootstrap: str, topic: str, partitions: Iterable[int], timeout_s: float = 10.0) -> dict[int, int]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "odradek-watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in partitions
        }
    finally:
        consumer.close()


# --- confluent-kafka ---


def _produce_confluent(
    bootstrap: str, topic: str, records: Sequence[Record], opts: ProducerOptions, timeout_s: float
) -> list[Delivery]:
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "acks": opts.acks,
        "enable.idempotence": opts.idempotent,
        "linger.ms": opts.linger_ms,
        "message.timeout.ms": int(timeout_s * 1000),
    }
    if opts.compression:
        config["compression.type"] = opts.compression
    if opts.max_request_bytes:
        config["message.max.bytes"] = opts.max_request_bytes
    config.update(opts.extra)
    producer = confluent_kafka.Producer(config)
    deliveries: list[Delivery | None] = [None] * len(records)
    errors: list[tuple[int, str]] = []

    def on_delivery(index: int, err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
        if err is not None:
            errors.append((index, err.name()))
        else:
            deliveries[index] = Delivery(msg.partition(), msg.offset())

    for index, record in enumerate(records):
        kwargs: dict[str, object] = {}
        if record.partition is not None:
            kwargs["partition"] = record.partition
        if record.timestamp_ms is not None:
            kwargs["timestamp"] = record.timestamp_ms
        if record.headers:
            kwargs["headers"] = list(record.headers)
        callback = lambda err, msg, index=index: on_delivery(index, err, msg)  # noqa: E731
        while True:
            try:
                producer.produce(topic, value=record.value, key=record.key, on_delivery=callback, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(timeout_s)
    if remaining:
        raise DeliveryFailed("confluent", [(-1, f"{remaining} messages still in queue after {timeout_s} s")])
    if errors:
        raise DeliveryFailed("confluent", sorted(errors))
    return deliveries  # type: ignore[return-value]


def _consume_confluent(
    bootstrap: str, topic: str, partitions: list[int], count: int, timeout_s: float, extra: dict[str, object]
) -> list[Consumed]:
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": "odradek-integration",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **extra,
    }
    consumer = confluent_kafka.Consumer(config)
    consumed: list[Consumed] = []
    errors: list[str] = []
    try:
        consumer.assign(
            [confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions]
        )
        deadline = time.monotonic() + timeout_s
        while len(consumed) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=min(10_000, count - len(consumed)), timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        continue
                    if err.fatal():
                        raise AssertionError(f"confluent consumer: fatal error {err}")
                    errors.append(str(err))
                    continue
                consumed.append(_from_confluent(msg))
    finally:
        consumer.close()
    _check_count("confluent", consumed, count, timeout_s, errors)
    return consumed


def _from_confluent(msg: confluent_kafka.Message) -> Consumed:
    timestamp_type, timestamp_ms = msg.timestamp()
    return Consumed(
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        key=msg.key(),
        value=msg.value(),
        headers=_headers(msg.headers()),
        timestamp_ms=timestamp_ms,
        timestamp_type={
            confluent_kafka.TIMESTAMP_CREATE_TIME: CREATE_TIME,
            confluent_kafka.TIMESTAMP_LOG_APPEND_TIME: LOG_APPEND_TIME,
        }.get(timestamp_type, f"unavailable({timestamp_type})"),
    )


# --- kafka-python ---


def _produce_kafka_python(
    bootstrap: str, topic: str, records: Sequence[Record], opts: ProducerOptions, timeout_s: float
) -> list[Delivery]:
    import kafka

    config = _python_producer_config(bootstrap, opts, timeout_s)
    config.setdefault("max_block_ms", int(timeout_s * 1000))
    producer = kafka.KafkaProducer(**config)
    try:
        futures = [
            producer.send(
                topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers) or None,
                partition=record.partition,
                timestamp_ms=record.timestamp_ms,
            )
            for record in records
        ]
        producer.flush(timeout_s)
        deliveries: list[Delivery] = []
        errors: list[tuple[int, str]] = []
        for index, future in enumerate(futures):
            try:
                metadata = future.get(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
                errors.append((index, repr(exc)))
                continue
            deliveries.append(Delivery(metadata.partition, metadata.offset))
    finally:
        _close_kafka_python_producer(producer)
    if errors:
        raise DeliveryFailed("kafka-python", errors)
    return deliveries


def _close_kafka_python_producer(producer: object) -> None:
    import kafka.errors

    try:
        producer.close(timeout=10)  # type: ignore[attr-defined]
    except kafka.errors.KafkaTimeoutError:
        # kafka-python's close() raises when its flush times out, leaving the sender thread
        # running and __del__ to fail again later. A live sender thread compiling protocol code
        # can break pytest's report (CPython 3.11.7: "AST constructor recursion depth mismatch").
        producer._sender.force_close()  # type: ignore[attr-defined]
        producer._closed = True  # type: ignore[attr-defined]


def _consume_kafka_python(
    bootstrap: str, topic: str, partitions: list[int], count: int, timeout_s: float, extra: dict[str, object]
) -> list[Consumed]:
    import kafka

    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **extra,
    )
    consumed: list[Consumed] = []
    try:
        consumer.assign([kafka.TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while len(consumed) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                consumed.extend(_from_python_record(r) for r in batch)
    finally:
        consumer.close()
    _check_count("kafka-python", consumed, count, timeout_s, [])
    return consumed


def _from_python_record(record: object) -> Consumed:
    """A kafka-python or aiokafka ConsumerRecord; both have the same fields."""
    return Consumed(
        topic=record.topic,  # type: ignore[attr-defined]
        partition=record.partition,  # type: ignore[attr-defined]
        offset=record.offset,  # type: ignore[attr-defined]
        key=record.key,  # type: ignore[attr-defined]
        value=record.value,  # type: ignore[attr-defined]
        headers=_headers(record.headers),  # type: ignore[attr-defined]
        timestamp_ms=record.timestamp,  # type: ignore[attr-defined]
        timestamp_type={0: CREATE_TIME, 1: LOG_APPEND_TIME}.get(
            record.timestamp_type, f"unavailable({record.timestamp_type})"  # type: ignore[attr-defined]
        ),
    )


# --- aiokafka ---


async def _produce_aiokafka(
    bootstrap: str, topic: str, records: Sequence[Record], opts: ProducerOptions, timeout_s: float
) -> list[Delivery]:
    import aiokafka

    producer = aiokafka.AIOKafkaProducer(**_python_producer_config(bootstrap, opts, timeout_s))
    await asyncio.wait_for(producer.start(), timeout_s)
    try:
        futures = [
            await producer.send(
                topic,
                value=record.value,
                key=record.key,
                partition=record.partition,
                timestamp_ms=record.timestamp_ms,
                headers=list(record.headers) or None,
            )
            for record in records
        ]
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout_s)
    finally:
        await producer.stop()
    errors = [(i, repr(r)) for i, r in enumerate(results) if isinstance(r, BaseException)]
    if errors:
        raise DeliveryFailed("aiokafka", errors)
    return [Delivery(r.partition, r.offset) for r in results]


async def _consume_aiokafka(
    bootstrap: str, topic: str, partitions: list[int], count: int, timeout_s: float, extra: dict[str, object]
) -> list[Consumed]:
    import aiokafka

    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **extra,
    )
    await asyncio.wait_for(consumer.start(), timeout_s)
    consumed: list[Consumed] = []
    try:
        consumer.assign([aiokafka.TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while len(consumed) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                consumed.extend(_from_python_record(r) for r in batch)
    finally:
        await consumer.stop()
    _check_count("aiokafka", consumed, count, timeout_s, [])
    return consumed


# --- shared ---


def _python_producer_config(bootstrap: str, opts: ProducerOptions, timeout_s: float) -> dict[str, object]:
    """Producer config for kafka-python and aiokafka, which share these names."""
    config: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "acks": opts.acks if opts.acks == "all" else int(opts.acks),
        "enable_idempotence": opts.idempotent,
        "linger_ms": opts.linger_ms,
        "request_timeout_ms": int(timeout_s * 1000),
    }
    if opts.compression:
        config["compression_type"] = opts.compression
    if opts.max_request_bytes:
        config["max_request_size"] = opts.max_request_bytes
    config.update(opts.extra)
    return config


def _headers(headers: Iterable[tuple[str, bytes | None]] | None) -> Headers:
    return tuple((k, v) for k, v in headers or ())  # type: ignore[misc]


def _check_count(client: str, consumed: list[Consumed], count: int, timeout_s: float, errors: list[str]) -> None:
    if len(consumed) < count:
        shown = "; ".join(dict.fromkeys(errors)) or "none"
        raise ConsumeTimeout(
            f"{client}: consumed {len(consumed)} of {count} messages in {timeout_s} s; client errors: {shown}"
        )
