"""Transactions (exactly-once) as users of the three Python clients see them.

Covered, with confluent-kafka (librdkafka), kafka-python and aiokafka where the client has the
API:
- a committed transaction is visible to a read_committed consumer, all records in order, on
  every partition it wrote to (aiokafka also through `async with producer.transaction()`);
- an aborted transaction is invisible to read_committed, visible to read_uncommitted, and does
  not stop a read_committed consumer from reading what is committed after it;
- two transactions interleaved on one partition, one committed, one aborted: read_committed
  sees exactly the committed one, its end offset (the last stable offset) stops at the first
  record of the open transaction while it is open, and reaches the high watermark after;
- an open transaction (flushed, not committed) hides nothing written before it and shows
  nothing of itself until it commits;
- zombie fencing: init_transactions of a new producer with the same transactional.id fences
  the older ones: a commit of the open transaction, or the first send of a new one, fails with
  the client's fenced error, and none of their records become visible;
- consume-transform-produce with send_offsets_to_transaction: after commit the group's offsets
  are at the end of the input and the output holds each input once; after abort, neither;
- broker restarts (odradek fixtures): a transaction interrupted by SIGKILL is aborted by the
  next init_transactions of its transactional.id, or by its timeout, and never blocks the
  partition; committed after the restart it is all or nothing; transactions committed and
  aborted before a clean restart keep their outcome;
- a transaction.timeout.ms above the broker's transaction.max.timeout.ms makes
  init_transactions fail with INVALID_TRANSACTION_TIMEOUT.

Each scenario is a plain function of the bootstrap servers (and, for restarts, a `restart`
callable), so the same logic can be run against Apache Kafka to check the test itself. The
broker runs with `BROKER_CONFIG`; the tests never sleep to synchronise, they poll with deadlines.

Timing that matters: a broker writes the commit/abort markers after EndTxn has been answered
(Kafka does so asynchronously), so a consumer may see the last stable offset move a moment after
commit_transaction() returns; reads therefore wait for the expected records, then for the end
offset, under a deadline. A transaction nobody finishes is aborted transaction.timeout.ms after it
started, at the next check for timed-out transactions, which Kafka runs every
transaction.abort.timed.out.transaction.cleanup.interval.ms (default 10 s; 500 ms here).
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import aiokafka
import aiokafka.errors
import confluent_kafka
import kafka
import kafka.errors
import pytest

from .clients import CLIENTS, ConsumeTimeout, Record, create_topic, produce
from .group_clients import finish_orphaned_kafka_python_join

# librdkafka's Producer.close() aborts an open transaction and warns when that fails, as it does
# for the fenced and abandoned producers here.
pytestmark = pytest.mark.filterwarnings("ignore:Producer abort_transaction failed during close:RuntimeWarning")

# The broker settings every test here runs with (and the Kafka used to check the tests).
BROKER_CONFIG = {
    # transaction_timeout_above_broker_maximum_is_refused asks for more; the clients' default
    # transaction.timeout.ms (60 s) is allowed.
    "transaction.max.timeout.ms": "60000",
    # How often the coordinator aborts timed-out transactions (Kafka's default is 10 s).
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500",
    # A consumer group with one member is formed at once instead of after 3 s.
    "group.initial.rebalance.delay.ms": "0",
}
MAX_TIMEOUT_MS = int(BROKER_CONFIG["transaction.max.timeout.ms"])
TIMEOUT_S = 30.0  # any single client operation or read
# A producer abandoned mid-transaction (interrupted_transaction_times_out): short, so the broker
# aborts it quickly.
# librdkafka refuses transaction.timeout.ms below 1000.
ABANDONED_TXN_TIMEOUT_MS = 2000

Restart = Callable[[bool], None]  # restart(kill): stop the broker (SIGKILL if kill, else clean) and start it again


def values(prefix: str, count: int) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(count)]


def unique(name: str) -> str:
    """Topic, group and transactional ids that do not collide when scenarios share one broker."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


# --- transactional producers behind one shape ---


class TxnProducer:
    """init / begin / send / flush / commit / abort / close of one client's transactional producer.

    `send` queues records; `flush` waits for all to be acknowledged and raises the client's own
    error if one failed; `commit` and `abort` raise what the client raises.
    """

    client = "?"

    def init(self) -> None: ...
    def begin(self) -> None: ...
    def send(self, topic: str, records: Iterable[bytes], partition: int = 0) -> None: ...
    def flush(self) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...

    def is_fenced(self, error: BaseException) -> bool:
        """Whether `error` is this client's 'another producer with this transactional.id took over'."""
        raise NotImplementedError


def close_confluent(producer: confluent_kafka.Producer) -> None:
    """Producer.close() flushes and aborts an open transaction; on a producer that already failed
    fatally (fenced, refused) it raises that error again, which the caller has checked already."""
    try:
        producer.close()
    except confluent_kafka.KafkaException as exc:
        if not exc.args[0].fatal():
            raise


class ConfluentTxnProducer(TxnProducer):
    client = "confluent"

    def __init__(self, bootstrap: str, transactional_id: str, **config: object):
        self.producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5, **config}
        )
        self.failed: list[confluent_kafka.KafkaError] = []

    def _on_delivery(self, err: confluent_kafka.KafkaError | None, _msg: object) -> None:
        if err is not None:
            self.failed.append(err)

    def init(self) -> None:
        self.producer.init_transactions(TIMEOUT_S)

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send(self, topic: str, records: Iterable[bytes], partition: int = 0) -> None:
        for value in records:
            self.producer.produce(topic, value=value, partition=partition, on_delivery=self._on_delivery)

    def flush(self) -> None:
        try:
            remaining = self.producer.flush(TIMEOUT_S)
        except SystemError as exc:
            # confluent-kafka 2.16.1: flush() raises a fatal error (e.g. _FENCED) as KafkaException
            # but then serves delivery callbacks with it pending: a SystemError caused by it.
            if isinstance(exc.__cause__, confluent_kafka.KafkaException):
                raise exc.__cause__ from None
            # Sometimes it carries no cause (and the delivery reports only say _PURGE_QUEUE): the
            # producer's fatal error is what any transactional call raises now.
            try:
                self.producer.begin_transaction()
            except confluent_kafka.KafkaException as fatal:
                if fatal.args[0].fatal():
                    raise fatal from None
            raise
        if self.failed:
            raise confluent_kafka.KafkaException(self.failed[0])
        assert remaining == 0, f"{remaining} records not acknowledged in {TIMEOUT_S} s"

    def commit(self) -> None:
        self.producer.commit_transaction(TIMEOUT_S)

    def abort(self) -> None:
        self.producer.abort_transaction(TIMEOUT_S)

    def close(self) -> None:
        close_confluent(self.producer)

    def is_fenced(self, error: BaseException) -> bool:
        # librdkafka 2.16 sends AddPartitionsToTxn v0 and EndTxn v1, to which Kafka answers a stale
        # epoch with INVALID_PRODUCER_EPOCH (PRODUCER_FENCED only from v2); librdkafka raises
        # either as its own fatal _FENCED.
        if not isinstance(error, confluent_kafka.KafkaException):
            return False
        err = error.args[0]
        return err.fatal() and err.code() in (confluent_kafka.KafkaError._FENCED, confluent_kafka.KafkaError.PRODUCER_FENCED)


class KafkaPythonTxnProducer(TxnProducer):
    client = "kafka-python"

    def __init__(self, bootstrap: str, transactional_id: str, **config: object):
        self.producer = kafka.KafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=transactional_id,
            linger_ms=5,
            max_block_ms=int(TIMEOUT_S * 1000),
            **config,
        )
        self.futures: list[object] = []

    def init(self) -> None:
        self.producer.init_transactions()

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send(self, topic: str, records: Iterable[bytes], partition: int = 0) -> None:
        self.futures += [self.producer.send(topic, value=value, partition=partition) for value in records]

    def flush(self) -> None:
        self.producer.flush(TIMEOUT_S)
        futures, self.futures = self.futures, []
        for future in futures:
            future.get(timeout=TIMEOUT_S)

    def commit(self) -> None:
        self.producer.commit_transaction()
        self.futures = []

    def abort(self) -> None:
        self.producer.abort_transaction()
        self.futures = []

    def close(self) -> None:
        try:
            self.producer.close(timeout=5)
        except kafka.errors.KafkaError:
            # as in clients._close_kafka_python_producer: do not leave the sender thread running
            self.producer._sender.force_close()
            self.producer._closed = True

    def is_fenced(self, error: BaseException) -> bool:
        # kafka-python 3 sends AddPartitionsToTxn and EndTxn v3 and gets PRODUCER_FENCED (90).
        # A send() after the fenced error arrived raises KafkaError("Cannot perform send because
        # at least one previous transactional or idempotent request has failed...", the error).
        return isinstance(error, kafka.errors.ProducerFencedError) or (
            type(error) is kafka.errors.KafkaError and any(isinstance(a, kafka.errors.ProducerFencedError) for a in error.args)
        )


class AiokafkaTxnProducer(TxnProducer):
    """aiokafka driven from synchronous code on its own event loop, one call at a time.

    aiokafka has no init_transactions(): start() gets the producer id and fences older producers.
    """

    client = "aiokafka"

    def __init__(self, bootstrap: str, transactional_id: str, **config: object):
        self.loop = asyncio.new_event_loop()
        self.futures: list[asyncio.Future] = []

        async def make() -> aiokafka.AIOKafkaProducer:
            return aiokafka.AIOKafkaProducer(
                bootstrap_servers=bootstrap, transactional_id=transactional_id, linger_ms=5, **config
            )

        self.producer = self._run(make())

    def _run(self, coroutine):  # noqa: ANN001, ANN202
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, TIMEOUT_S))

    def init(self) -> None:
        self._run(self.producer.start())

    def begin(self) -> None:
        self._run(self.producer.begin_transaction())

    def send(self, topic: str, records: Iterable[bytes], partition: int = 0) -> None:
        for value in records:
            self.futures.append(self._run(self.producer.send(topic, value=value, partition=partition)))

    def flush(self) -> None:
        futures, self.futures = self.futures, []
        self._run(self.producer.flush())
        for future in futures:
            self._run(future)

    def commit(self) -> None:
        self._run(self.producer.commit_transaction())
        self.futures = []

    def abort(self) -> None:
        self._run(self.producer.abort_transaction())
        self.futures = []

    def close(self) -> None:
        self.futures = []
        try:
            self._run(self.producer.stop())
        finally:
            self.loop.close()

    def is_fenced(self, error: BaseException) -> bool:
        # aiokafka sends v0 of every transaction API and raises ProducerFenced for
        # INVALID_PRODUCER_EPOCH (47); PRODUCER_FENCED (90) would be an unexpected error to it.
        return isinstance(error, aiokafka.errors.ProducerFenced)


PRODUCERS: dict[str, type[TxnProducer]] = {
    "confluent": ConfluentTxnProducer,
    "kafka-python": KafkaPythonTxnProducer,
    "aiokafka": AiokafkaTxnProducer,
}


def txn_producer(client: str, bootstrap: str, transactional_id: str, **config: object) -> TxnProducer:
    """A transactional producer of `client`; `config` in that client's own spelling."""
    return PRODUCERS[client](bootstrap, transactional_id, **config)


# --- reading to the end, as a read_committed or read_uncommitted consumer sees it ---


@dataclass
class Read:
    values: dict[int, list[bytes]]  # partition -> record values, in offset order
    offsets: dict[int, list[int]]
    end: dict[int, int]  # the end offset the consumer saw: last stable offset (read_committed) or high watermark

    def all_values(self) -> list[bytes]:
        return [v for p in sorted(self.values) for v in self.values[p]]


def end_offsets(bootstrap: str, topic: str, partitions: Iterable[int], isolation: str) -> dict[int, int]:
    """The end offsets a consumer with `isolation` sees (librdkafka's get_watermark_offsets
    asks with the consumer's isolation.level: the last stable offset for read_committed)."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("txn-ends"), "isolation.level": isolation}
    )
    try:
        return {
            p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=TIMEOUT_S, cached=False)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def wait_for_end_offsets(bootstrap: str, topic: str, partitions: Iterable[int], isolation: str, expected: dict[int, int]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while (seen := end_offsets(bootstrap, topic, partitions, isolation)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{isolation} end offsets of {topic}: {seen}, expected {expected} within {TIMEOUT_S} s")
        time.sleep(0.05)  # poll interval of a condition with a deadline, not a synchronising sleep


def read(
    client: str,
    bootstrap: str,
    topic: str,
    partitions: Sequence[int] = (0,),
    isolation: str = "read_committed",
    expect: int = 0,
) -> Read:
    """Read `partitions` from the beginning with `isolation` until at least `expect` records came
    and the consumer's position reached the end offset it sees (asked after those records came),
    so that records the consumer must not see would have shown up. ConsumeTimeout otherwise."""
    if client == "confluent":
        return _read_confluent(bootstrap, topic, list(partitions), isolation, expect)
    if client == "kafka-python":
        return _read_kafka_python(bootstrap, topic, list(partitions), isolation, expect)
    if client == "aiokafka":
        return asyncio.run(_read_aiokafka(bootstrap, topic, list(partitions), isolation, expect))
    raise ValueError(client)


def _count(result: Read) -> int:
    return sum(len(v) for v in result.values.values())


def _timeout(client: str, topic: str, isolation: str, expect: int, result: Read, positions: object) -> ConsumeTimeout:
    return ConsumeTimeout(
        f"{client} {isolation} on {topic}: {_count(result)} of at least {expect} records and positions "
        f"{positions} vs end offsets {result.end} in {TIMEOUT_S} s; got {result.values}"
    )


def _read_confluent(bootstrap: str, topic: str, partitions: list[int], isolation: str, expect: int) -> Read:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("txn-reader"),
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
            # the broker answers one request of a connection at a time: a long-polling fetch
            # would hold get_watermark_offsets() back for up to its 500 ms
            "fetch.wait.max.ms": 10,
        }
    )
    result = Read({p: [] for p in partitions}, {p: [] for p in partitions}, {})
    tps = [confluent_kafka.TopicPartition(topic, p) for p in partitions]
    # Where the consumer stands: the offset of its last end-of-partition event, which librdkafka
    # emits when its fetch position reaches the end offset it sees (the last stable offset for
    # read_committed), past control records and aborted records; unlike position(), it also says
    # so for a partition that had nothing to deliver.
    at_end: dict[int, int] = {}
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for msg in consumer.consume(num_messages=1000, timeout=0.1):
                err = msg.error()
                if err is not None:
                    if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        at_end[msg.partition()] = msg.offset()
                        continue
                    raise AssertionError(f"confluent consumer error: {err}")
                at_end.pop(msg.partition(), None)
                result.values[msg.partition()].append(msg.value())
                result.offsets[msg.partition()].append(msg.offset())
            if _count(result) >= expect and len(at_end) == len(partitions):
                result.end = {tp.partition: consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False)[1] for tp in tps}
                if all(at_end[p] >= result.end[p] for p in partitions):
                    return result
            if time.monotonic() > deadline:
                raise _timeout("confluent", topic, isolation, expect, result, at_end)
    finally:
        consumer.close()


def _read_kafka_python(bootstrap: str, topic: str, partitions: list[int], isolation: str, expect: int) -> Read:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level=isolation
    )
    result = Read({p: [] for p in partitions}, {p: [] for p in partitions}, {})
    tps = [kafka.TopicPartition(topic, p) for p in partitions]
    # kafka-python and aiokafka move position() past control batches and aborted records, so it
    # reaches the end offset: only if the broker returns those batches in fetch responses.
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning()
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for tp, batch in consumer.poll(timeout_ms=100).items():
                result.values[tp.partition] += [r.value for r in batch]
                result.offsets[tp.partition] += [r.offset for r in batch]
            if _count(result) >= expect:
                result.end = {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
                positions = {tp.partition: consumer.position(tp) for tp in tps}
                if all(positions[p] >= result.end[p] for p in partitions):
                    return result
            if time.monotonic() > deadline:
                raise _timeout("kafka-python", topic, isolation, expect, result, {tp.partition: consumer.position(tp) for tp in tps})
    finally:
        consumer.close()


async def _read_aiokafka(bootstrap: str, topic: str, partitions: list[int], isolation: str, expect: int) -> Read:
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level=isolation
    )
    await asyncio.wait_for(consumer.start(), TIMEOUT_S)
    result = Read({p: [] for p in partitions}, {p: [] for p in partitions}, {})
    tps = [aiokafka.TopicPartition(topic, p) for p in partitions]
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for tp, batch in (await consumer.getmany(timeout_ms=100)).items():
                result.values[tp.partition] += [r.value for r in batch]
                result.offsets[tp.partition] += [r.offset for r in batch]
            if _count(result) >= expect:
                result.end = {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
                positions = {tp.partition: await consumer.position(tp) for tp in tps}
                if all(positions[p] >= result.end[p] for p in partitions):
                    return result
            if time.monotonic() > deadline:
                raise _timeout("aiokafka", topic, isolation, expect, result, {tp.partition: await consumer.position(tp) for tp in tps})
    finally:
        await consumer.stop()


# --- scenarios: plain functions of the bootstrap servers ---


def committed_transaction_is_visible(bootstrap: str, client: str) -> None:
    topic = unique(f"txn-commit-{client}")
    create_topic(bootstrap, topic, partitions=2)
    sent = {0: values("p0", 20), 1: values("p1", 20)}
    producer = txn_producer(client, bootstrap, unique("txn-commit"))
    try:
        producer.init()
        producer.begin()
        for i in range(20):  # alternate partitions, so the transaction spans both from the start
            producer.send(topic, [sent[0][i]], partition=0)
            producer.send(topic, [sent[1][i]], partition=1)
        producer.commit()
    finally:
        producer.close()

    got = read(client, bootstrap, topic, [0, 1], "read_committed", expect=40)
    assert got.values == sent
    for partition in (0, 1):
        assert got.offsets[partition] == list(range(20)), "records of one transaction are consecutive"
        # one commit marker after the records, and nothing left open
        assert got.end[partition] == 21


def aborted_transaction_is_invisible(bootstrap: str, client: str) -> None:
    topic = unique(f"txn-abort-{client}")
    create_topic(bootstrap, topic)
    producer = txn_producer(client, bootstrap, unique("txn-abort"))
    try:
        producer.init()
        producer.begin()
        producer.send(topic, values("aborted", 10))
        producer.flush()  # written to the log, then thrown away
        producer.abort()
        producer.begin()
        producer.send(topic, values("committed", 5))
        producer.commit()
    finally:
        producer.close()

    committed = read(client, bootstrap, topic, [0], "read_committed", expect=5)
    assert committed.all_values() == values("committed", 5)
    assert committed.offsets[0] == list(range(11, 16)), "10 aborted records and the abort marker come first"
    uncommitted = read(client, bootstrap, topic, [0], "read_uncommitted", expect=15)
    assert uncommitted.all_values() == values("aborted", 10) + values("committed", 5)
    assert committed.end == uncommitted.end == {0: 17}


def interleaved_transactions_on_one_partition(bootstrap: str, client: str) -> None:
    topic = unique(f"txn-interleaved-{client}")
    create_topic(bootstrap, topic)
    committer = txn_producer(client, bootstrap, unique("txn-interleaved-commit"))
    aborter = txn_producer(client, bootstrap, unique("txn-interleaved-abort"))
    try:
        committer.init()
        aborter.init()
        committer.begin()
        aborter.begin()
        # offsets: c-0 0, a-0 1, c-1 2, a-1 3, ... c-4 8, a-4 9
        for i in range(5):
            committer.send(topic, [f"c-{i}".encode()])
            committer.flush()
            aborter.send(topic, [f"a-{i}".encode()])
            aborter.flush()
        assert end_offsets(bootstrap, topic, [0], "read_uncommitted") == {0: 10}
        assert end_offsets(bootstrap, topic, [0], "read_committed") == {0: 0}

        committer.commit()  # its marker at 10; the aborter's transaction, from offset 1, is still open
        wait_for_end_offsets(bootstrap, topic, [0], "read_committed", {0: 1})
        while_open = read(client, bootstrap, topic, [0], "read_committed", expect=1)
        assert while_open.all_values() == [b"c-0"]
        assert while_open.end == {0: 1}

        aborter.abort()  # its marker at 11
    finally:
        committer.close()
        aborter.close()

    got = read(client, bootstrap, topic, [0], "read_committed", expect=5)
    assert got.all_values() == values("c", 5)
    assert got.offsets[0] == [0, 2, 4, 6, 8]
    assert got.end == {0: 12}, "read_committed end offset is the high watermark once nothing is open"
    everything = read(client, bootstrap, topic, [0], "read_uncommitted", expect=10)
    assert everything.all_values() == [v for i in range(5) for v in (f"c-{i}".encode(), f"a-{i}".encode())]


def open_transaction_is_invisible_until_commit(bootstrap: str, client: str) -> None:
    topic = unique(f"txn-open-{client}")
    create_topic(bootstrap, topic)
    produce("confluent", bootstrap, topic, [Record(None, v, 0) for v in values("before", 3)])
    producer = txn_producer(client, bootstrap, unique("txn-open"))
    try:
        producer.init()
        producer.begin()
        producer.send(topic, values("open", 4))
        producer.flush()

        # the last stable offset stays at the first record of the open transaction
        assert end_offsets(bootstrap, topic, [0], "read_uncommitted") == {0: 7}
        assert end_offsets(bootstrap, topic, [0], "read_committed") == {0: 3}
        while_open = read(client, bootstrap, topic, [0], "read_committed", expect=3)
        assert while_open.all_values() == values("before", 3)
        assert while_open.end == {0: 3}
        assert read(client, bootstrap, topic, [0], "read_uncommitted", expect=7).all_values() == values("before", 3) + values("open", 4)

        producer.commit()
    finally:
        producer.close()

    after = read(client, bootstrap, topic, [0], "read_committed", expect=7)
    assert after.all_values() == values("before", 3) + values("open", 4)
    assert after.end == {0: 8}


def second_producer_fences_the_first(bootstrap: str, client: str) -> None:
    """init_transactions of a new producer fences every older one with its transactional.id: one
    in the middle of a transaction (its commit fails, its records are aborted) and one between
    transactions (its next transaction fails at the first send)."""
    topic = unique(f"txn-fenced-{client}")
    create_topic(bootstrap, topic)
    transactional_id = unique("txn-fenced")
    first, second, third = (txn_producer(client, bootstrap, transactional_id) for _ in range(3))
    try:
        first.init()
        first.begin()
        first.send(topic, values("first", 3))
        first.flush()

        second.init()  # fences the first and aborts its open transaction
        with pytest.raises(Exception) as fenced:  # noqa: PT011 - the class is the client's, checked below
            first.commit()
        assert first.is_fenced(fenced.value), f"{client}: not the fenced error: {fenced.value!r}"

        second.begin()
        second.send(topic, values("second", 3))
        second.commit()

        third.init()  # fences the second, which is between transactions
        with pytest.raises(Exception) as fenced:  # noqa: PT011
            second.begin()
            second.send(topic, [b"second-late"])  # one: kafka-python refuses a later send() with a wrapped error
            second.flush()
        assert second.is_fenced(fenced.value), f"{client}: not the fenced error: {fenced.value!r}"
    finally:
        for producer in (first, second, third):
            producer.close()

    got = read(client, bootstrap, topic, [0], "read_committed", expect=3)
    assert got.all_values() == values("second", 3)
    everything = read(client, bootstrap, topic, [0], "read_uncommitted", expect=6)
    assert everything.all_values() == values("first", 3) + values("second", 3), "a fenced producer's record was written"


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The group's committed offsets as a fresh consumer of the group reads them (-1001: none)."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([confluent_kafka.TopicPartition(topic, p) for p in partitions], timeout=TIMEOUT_S)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def transform(value: bytes) -> bytes:
    return value.upper()


def _transform_confluent(bootstrap: str, source: str, sink: str, group: str, count: int, commit: bool) -> None:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": unique(f"{group}-txn")})
    try:
        consumer.subscribe([source])
        producer.init_transactions(TIMEOUT_S)
        producer.begin_transaction()
        done = 0
        deadline = time.monotonic() + TIMEOUT_S
        while done < count:
            assert time.monotonic() < deadline, f"confluent: transformed {done} of {count} in {TIMEOUT_S} s"
            for msg in consumer.consume(num_messages=count, timeout=0.1):
                assert msg.error() is None, msg.error()
                producer.produce(sink, value=transform(msg.value()), partition=0)
                done += 1
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), TIMEOUT_S
        )
        if commit:
            producer.commit_transaction(TIMEOUT_S)
        else:
            producer.abort_transaction(TIMEOUT_S)
    finally:
        consumer.close()
        close_confluent(producer)


def _transform_kafka_python(bootstrap: str, source: str, sink: str, group: str, count: int, commit: bool) -> None:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = kafka.KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=unique(f"{group}-txn"), max_block_ms=int(TIMEOUT_S * 1000)
    )
    try:
        consumer.subscribe([source])
        producer.init_transactions()
        producer.begin_transaction()
        done = 0
        deadline = time.monotonic() + TIMEOUT_S
        while done < count:
            assert time.monotonic() < deadline, f"kafka-python: transformed {done} of {count} in {TIMEOUT_S} s"
            for batch in consumer.poll(timeout_ms=100).values():
                for record in batch:
                    producer.send(sink, value=transform(record.value), partition=0)
                    done += 1
            finish_orphaned_kafka_python_join(consumer)
        offsets = {tp: kafka.OffsetAndMetadata(consumer.position(tp), "", -1) for tp in consumer.assignment()}
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    finally:
        consumer.close()
        producer.close(timeout=5)


async def _transform_aiokafka(bootstrap: str, source: str, sink: str, group: str, count: int, commit: bool) -> None:
    consumer = aiokafka.AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique(f"{group}-txn"))
    await consumer.start()
    await producer.start()
    try:
        await producer.begin_transaction()
        done = 0
        deadline = time.monotonic() + TIMEOUT_S
        while done < count:
            assert time.monotonic() < deadline, f"aiokafka: transformed {done} of {count} in {TIMEOUT_S} s"
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                for record in batch:
                    await producer.send(sink, value=transform(record.value), partition=0)
                    done += 1
        offsets = {tp: await consumer.position(tp) for tp in consumer.assignment()}
        await producer.send_offsets_to_transaction(offsets, group)
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await consumer.stop()
        await producer.stop()


def consume_transform_produce(bootstrap: str, client: str) -> None:
    """Once aborted (no offsets, no output), then committed (offsets at the end, output once)."""
    source, sink, group = unique(f"ctp-in-{client}"), unique(f"ctp-out-{client}"), unique(f"ctp-{client}")
    create_topic(bootstrap, source, partitions=2)
    create_topic(bootstrap, sink)
    inputs = [Record(None, v, i % 2) for i, v in enumerate(values("in", 10))]
    produce("confluent", bootstrap, source, inputs)

    def run(commit: bool) -> None:
        if client == "confluent":
            _transform_confluent(bootstrap, source, sink, group, len(inputs), commit)
        elif client == "kafka-python":
            _transform_kafka_python(bootstrap, source, sink, group, len(inputs), commit)
        else:
            asyncio.run(asyncio.wait_for(_transform_aiokafka(bootstrap, source, sink, group, len(inputs), commit), TIMEOUT_S))

    run(commit=False)
    assert committed_offsets(bootstrap, group, source, [0, 1]) == {0: confluent_kafka.OFFSET_INVALID, 1: confluent_kafka.OFFSET_INVALID}
    assert read(client, bootstrap, sink, [0], "read_committed").all_values() == []

    run(commit=True)  # the group has no offsets, so it starts over from the beginning
    assert committed_offsets(bootstrap, group, source, [0, 1]) == {0: 5, 1: 5}
    got = read(client, bootstrap, sink, [0], "read_committed", expect=len(inputs))
    assert sorted(got.all_values()) == sorted(transform(r.value) for r in inputs)


def interrupted_transaction_is_aborted_by_next_init(bootstrap: str, restart: Restart, client: str) -> None:
    """The broker is SIGKILLed between send and commit; the application restarts too and its new
    producer (same transactional.id) aborts the interrupted transaction in init_transactions."""
    topic = unique(f"txn-killed-{client}")
    create_topic(bootstrap, topic)
    transactional_id = unique("txn-killed")
    interrupted = txn_producer(client, bootstrap, transactional_id)
    try:
        interrupted.init()
        interrupted.begin()
        interrupted.send(topic, values("interrupted", 5))
        interrupted.flush()

        restart(True)

        successor = txn_producer(client, bootstrap, transactional_id)
        try:
            successor.init()
            successor.begin()
            successor.send(topic, values("after", 5))
            successor.commit()
        finally:
            successor.close()
    finally:
        interrupted.close()  # never committed: the application that owned it is gone

    got = read(client, bootstrap, topic, [0], "read_committed", expect=5)
    assert got.all_values() == values("after", 5)
    everything = read(client, bootstrap, topic, [0], "read_uncommitted", expect=10)
    assert everything.all_values() == values("interrupted", 5) + values("after", 5), "acknowledged records lost"


def interrupted_transaction_times_out(bootstrap: str, restart: Restart, timeout_ms: int = ABANDONED_TXN_TIMEOUT_MS) -> None:
    """The broker is SIGKILLed between send and commit, and nobody finishes that transaction: the
    broker aborts it after its transaction.timeout.ms, so another producer's later transaction on
    the same partition becomes visible to read_committed.

    (Checked on Kafka with timeout_ms=25000: a single KRaft node killed with SIGKILL keeps failing
    to register again until its old session expires, about 10 s, and transaction markers its
    coordinator sends in that window are dropped for "no leader", which leaves the partition
    blocked for good. odradek has no such window.)"""
    topic = unique("txn-killed-timeout")
    create_topic(bootstrap, topic)
    abandoned = ConfluentTxnProducer(bootstrap, unique("txn-abandoned"), **{"transaction.timeout.ms": timeout_ms})
    try:
        abandoned.init()
        abandoned.begin()
        abandoned.send(topic, values("abandoned", 5))
        abandoned.flush()

        restart(True)

        other = ConfluentTxnProducer(bootstrap, unique("txn-other"))
        try:
            other.init()
            other.begin()
            other.send(topic, values("other", 5))
            other.commit()
        finally:
            other.close()

        # Visible once the abandoned transaction is aborted: timeout_ms after it began plus up
        # to one cleanup interval (BROKER_CONFIG), well within TIMEOUT_S.
        got = read("confluent", bootstrap, topic, [0], "read_committed", expect=5)
        assert got.all_values() == values("other", 5)
        assert got.end == end_offsets(bootstrap, topic, [0], "read_uncommitted"), "the partition is still blocked"
    finally:
        abandoned.close()


def interrupted_transaction_is_all_or_nothing(bootstrap: str, restart: Restart) -> None:
    """The broker is SIGKILLed between send and commit, and the same producer then commits: the
    transaction commits whole or fails and is aborted whole, never in part. (Kafka keeps the
    transaction's state and its acknowledged records over a kill of the process, and commits.)"""
    topic = unique("txn-killed-commit")
    create_topic(bootstrap, topic, partitions=2)
    transactional_id = unique("txn-killed-commit")
    producer = ConfluentTxnProducer(bootstrap, transactional_id)
    try:
        producer.init()
        producer.begin()
        for partition in (0, 1):
            producer.send(topic, values(f"interrupted-p{partition}", 5), partition=partition)
        producer.flush()

        restart(True)

        try:
            producer.commit()
            committed = True
        except confluent_kafka.KafkaException as exc:  # what librdkafka's documentation says to do
            committed = False
            if exc.args[0].txn_requires_abort():
                producer.abort()
            elif not exc.args[0].fatal():
                raise
    finally:
        producer.close()

    # A later transaction of the same transactional.id (its init aborts whatever is left open).
    successor = ConfluentTxnProducer(bootstrap, transactional_id)
    try:
        successor.init()
        successor.begin()
        for partition in (0, 1):
            successor.send(topic, [b"after"], partition=partition)
        successor.commit()
    finally:
        successor.close()

    got = read("confluent", bootstrap, topic, [0, 1], "read_committed", expect=12 if committed else 2)
    assert got.values == {
        p: (values(f"interrupted-p{p}", 5) if committed else []) + [b"after"] for p in (0, 1)
    }, f"commit_transaction after the restart {'succeeded' if committed else 'failed'}"


def outcomes_survive_clean_restart(bootstrap: str, restart: Restart) -> None:
    topic = unique("txn-restart")
    create_topic(bootstrap, topic)
    transactional_id = unique("txn-restart")
    producer = ConfluentTxnProducer(bootstrap, transactional_id)
    try:
        producer.init()
        for prefix, commit in (("first", True), ("aborted", False), ("second", True)):
            producer.begin()
            producer.send(topic, values(prefix, 3))
            producer.flush()  # abort_transaction() drops records not sent yet: these are in the log
            producer.commit() if commit else producer.abort()
    finally:
        producer.close()
    # wait for every marker to be in the log before stopping
    wait_for_end_offsets(bootstrap, topic, [0], "read_committed", {0: 12})

    restart(False)

    got = read("confluent", bootstrap, topic, [0], "read_committed", expect=6)
    assert got.all_values() == values("first", 3) + values("second", 3)
    assert got.end == {0: 12}
    everything = read("confluent", bootstrap, topic, [0], "read_uncommitted", expect=9)
    assert everything.all_values() == values("first", 3) + values("aborted", 3) + values("second", 3)
    # the transactional.id still works after the restart
    again = ConfluentTxnProducer(bootstrap, transactional_id)
    try:
        again.init()
        again.begin()
        again.send(topic, values("third", 3))
        again.commit()
    finally:
        again.close()
    assert read("confluent", bootstrap, topic, [0], "read_committed", expect=9).all_values() == (
        values("first", 3) + values("second", 3) + values("third", 3)
    )


def transaction_timeout_above_broker_maximum_is_refused(bootstrap: str, client: str) -> None:
    """init_transactions fails with INVALID_TRANSACTION_TIMEOUT (50), in each client's way, and
    the transactional.id is not spoiled: with an allowed timeout it works."""
    too_long = MAX_TIMEOUT_MS * 2
    transactional_id = unique("txn-timeout")
    if client == "confluent":
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "transaction.timeout.ms": too_long}
        )
        try:
            with pytest.raises(confluent_kafka.KafkaException) as refused:
                producer.init_transactions(TIMEOUT_S)
            # KafkaError{FATAL,code=INVALID_TRANSACTION_TIMEOUT}: librdkafka does not retry it
            assert refused.value.args[0].code() == confluent_kafka.KafkaError.INVALID_TRANSACTION_TIMEOUT, refused.value
        finally:
            close_confluent(producer)
    elif client == "kafka-python":
        producer = kafka.KafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=transactional_id,
            transaction_timeout_ms=too_long,
            max_block_ms=int(TIMEOUT_S * 1000),
        )
        try:
            # kafka-python has no case for this code: a fatal plain KafkaError naming it
            with pytest.raises(kafka.errors.KafkaError, match=r"\[Error 50\] InvalidTransactionTimeoutError"):
                producer.init_transactions()
        finally:
            producer.close(timeout=5)
    else:

        async def start() -> None:
            producer = aiokafka.AIOKafkaProducer(
                bootstrap_servers=bootstrap, transactional_id=transactional_id, transaction_timeout_ms=too_long
            )
            try:
                await producer.start()  # aiokafka's InitProducerId
            finally:
                await producer.stop()

        with pytest.raises(aiokafka.errors.InvalidTransactionTimeout):
            asyncio.run(asyncio.wait_for(start(), TIMEOUT_S))

    topic = unique(f"txn-timeout-{client}")
    create_topic(bootstrap, topic)
    allowed = txn_producer(client, bootstrap, transactional_id)
    try:
        allowed.init()
        allowed.begin()
        allowed.send(topic, [b"allowed"])
        allowed.commit()
    finally:
        allowed.close()
    assert read(client, bootstrap, topic, [0], "read_committed", expect=1).all_values() == [b"allowed"]


def aiokafka_transaction_context(bootstrap: str) -> None:
    """`async with producer.transaction()` commits on a clean exit and aborts on an exception."""
    topic = unique("txn-aiokafka-context")
    create_topic(bootstrap, topic)

    class Rollback(Exception):
        pass

    async def run() -> None:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique("txn-context"))
        await producer.start()
        try:
            async with producer.transaction():
                for value in values("kept", 3):
                    await producer.send(topic, value=value, partition=0)
            with pytest.raises(Rollback):
                async with producer.transaction():
                    for value in values("dropped", 3):
                        await producer.send_and_wait(topic, value=value, partition=0)
                    raise Rollback
            async with producer.transaction():
                await producer.send(topic, value=b"last", partition=0)
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(run(), TIMEOUT_S))
    got = read("aiokafka", bootstrap, topic, [0], "read_committed", expect=4)
    assert got.all_values() == values("kept", 3) + [b"last"]


# --- the tests, on odradek ---


@pytest.fixture
def txn_broker(start_broker):
    yield start_broker(**BROKER_CONFIG)
    # Run the clients' finalizers now (aiokafka's futures of a fenced producer log "exception
    # never retrieved" from __del__), not at a random later point: Python code run by the garbage
    # collector while pytest compiles a module breaks CPython 3.11.7 ("AST constructor
    # recursion depth mismatch").
    gc.collect()


def restarter(broker) -> Restart:
    def restart(kill: bool) -> None:
        broker.kill() if kill else broker.stop()
        broker.start()

    return restart


@pytest.mark.parametrize("client", CLIENTS)
def test_committed_transaction_is_visible(txn_broker, client):
    committed_transaction_is_visible(txn_broker.bootstrap_servers, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_aborted_transaction_is_invisible(txn_broker, client):
    aborted_transaction_is_invisible(txn_broker.bootstrap_servers, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_interleaved_transactions_on_one_partition(txn_broker, client):
    interleaved_transactions_on_one_partition(txn_broker.bootstrap_servers, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_open_transaction_is_invisible_until_commit(txn_broker, client):
    open_transaction_is_invisible_until_commit(txn_broker.bootstrap_servers, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_second_producer_fences_the_first(txn_broker, client):
    second_producer_fences_the_first(txn_broker.bootstrap_servers, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_consume_transform_produce(txn_broker, client):
    consume_transform_produce(txn_broker.bootstrap_servers, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_transaction_interrupted_by_broker_kill_is_aborted_by_next_init(txn_broker, client):
    interrupted_transaction_is_aborted_by_next_init(txn_broker.bootstrap_servers, restarter(txn_broker), client)


def test_transaction_interrupted_by_broker_kill_is_all_or_nothing(txn_broker):
    interrupted_transaction_is_all_or_nothing(txn_broker.bootstrap_servers, restarter(txn_broker))


def test_transaction_interrupted_by_broker_kill_times_out(txn_broker):
    interrupted_transaction_times_out(txn_broker.bootstrap_servers, restarter(txn_broker))


def test_transaction_outcomes_survive_clean_restart(txn_broker):
    outcomes_survive_clean_restart(txn_broker.bootstrap_servers, restarter(txn_broker))


@pytest.mark.parametrize("client", CLIENTS)
def test_transaction_timeout_above_broker_maximum_is_refused(txn_broker, client):
    transaction_timeout_above_broker_maximum_is_refused(txn_broker.bootstrap_servers, client)


def test_aiokafka_transaction_context(txn_broker):
    aiokafka_transaction_context(txn_broker.bootstrap_servers)
