"""Transactions (exactly-once) with Kafka's own Java client 4.4, Kafka Streams and kafka-transactions.

Covered, each as a user would check it:
- a transactional producer commits, aborts and commits again over 3 partitions, with a group offset
  in each transaction (sendOffsetsToTransaction): a read_committed consumer sees exactly the
  committed records, a read_uncommitted one all of them, the transaction markers take an offset
  each, the last stable offset stops at an open transaction, and only committed group offsets
  count (the Admin client's view, and a read_committed consumer's, which asks with require_stable);
  librdkafka (confluent-kafka, read_committed by default) reads the same committed records;
- zombie fencing: a second producer with the same transactional.id fences the first, whose open
  transaction is aborted and whose next commit (or send, then abort) fails as Kafka fails it;
- a producer that dies inside a transaction: the coordinator aborts it after transaction.timeout.ms;
- a Kafka Streams application with processing.guarantee=exactly_once_v2 (re-key through a
  repartition topic, count in a store with a changelog topic, a transaction per commit), run twice
  over two halves of the input: its output holds every count exactly once, and its group offsets
  cover the input;
- kafka-transactions (TransactionsCommand): `list`, `describe` and `describe-producers` for an
  open transaction and after its commit.

The Java programs are java/src/JavaTransactions.java and java/src/StreamsExactlyOnceCount.java;
they take the bootstrap servers as an argument and print what they saw, one fact a line, which the
tests parse and compare. Nothing here depends on which broker serves them: all of it passes against
Apache Kafka 4.4.0 (a single KRaft node) as it is.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import confluent_kafka
import pytest

from .conftest import Message, create_topic, produce

TRANSACTIONS = "JavaTransactions"
STREAMS_APP = "StreamsExactlyOnceCount"
TRANSACTIONS_COMMAND = "org.apache.kafka.tools.TransactionsCommand"
PARTITIONS = 3
PER_PARTITION = 3  # records each transaction of JavaTransactions sends to each partition


@dataclass
class Facts:
    """What a JavaTransactions / StreamsExactlyOnceCount run printed."""

    acked: dict[str, dict[int, list[int]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    end: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    records: dict[str, dict[int, list[tuple[int, str, str]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    group_offsets: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)

    def values(self, label: str) -> dict[int, list[str]]:
        return {p: [value for _offset, _key, value in rows] for p, rows in sorted(self.records[label].items())}

    def offsets(self, label: str) -> dict[int, list[int]]:
        return {p: [offset for offset, _key, _value in rows] for p, rows in sorted(self.records[label].items())}


def parse(stdout: str) -> Facts:
    facts = Facts()
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        parts = rest.split(" ")
        if kind == "acked":
            facts.acked[parts[0]][int(parts[1])].append(int(parts[2]))
        elif kind == "end":
            facts.end[parts[0]][int(parts[1])] = int(parts[2])
        elif kind == "record":
            label, partition, offset, key, value = parts
            facts.records[label][int(partition)].append((int(offset), key, value))
        elif kind == "group-offset":
            facts.group_offsets[parts[0]] = (parts[1], int(parts[2]), int(parts[3]))
        elif line.strip():
            facts.other.append(line)
    return facts


def values_of(name: str, partitions: range = range(PARTITIONS), per_partition: int = PER_PARTITION) -> dict[int, list[str]]:
    """The values JavaTransactions sends to each partition in transaction `name`."""
    return {p: [f"{name}-{p}-{i}" for i in range(per_partition)] for p in partitions}


def joined(*parts: dict[int, list[str]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for part in parts:
        for partition, values in part.items():
            out[partition].extend(values)
    return dict(sorted(out.items()))


def read_with_librdkafka(bootstrap: str, topic: str, partitions: range, isolation: str = "read_committed",
                         timeout_s: float = 30.0) -> dict[int, list[tuple[int, str, str]]]:
    """Every record of `partitions` from the start to the end (for read_committed: the last stable
    offset), read by confluent-kafka: partition -> [(offset, key, value)]."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "odradek-compat-txn-readback",  # required by librdkafka; unused with assign()
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
        "fetch.wait.max.ms": 100,
    })
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
    records: dict[int, list[tuple[int, str, str]]] = {p: [] for p in partitions}
    at_end: set[int] = set()
    errors: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                    else:
                        errors.append(str(msg.error()))
                    continue
                at_end.discard(msg.partition())
                records[msg.partition()].append((msg.offset(), msg.key().decode(), msg.value().decode()))
    finally:
        consumer.close()
    assert len(at_end) == len(partitions), f"librdkafka ({isolation}) reached the end of {sorted(at_end)} only; errors: {errors[:5]}"
    return records


def committed_offset_with_librdkafka(bootstrap: str, group: str, topic: str, partition: int,
                                     timeout_s: float = 30.0) -> int:
    """The group's committed offset as confluent-kafka sees it (read_committed: OffsetFetch with
    require_stable, so a pending transactional offset is waited for, not skipped); -1001: none.
    Asked again while the group's coordinator is not ready (librdkafka gives up on NOT_COORDINATOR)."""
    not_ready = {confluent_kafka.KafkaError.NOT_COORDINATOR, confluent_kafka.KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                 confluent_kafka.KafkaError.COORDINATOR_NOT_AVAILABLE}
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                [committed] = consumer.committed([confluent_kafka.TopicPartition(topic, partition)], timeout=timeout_s)
                break
            except confluent_kafka.KafkaException as error:
                if error.args[0].code() not in not_ready or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # the coordinator is loading: ask again
    finally:
        consumer.close()
    assert committed.error is None, committed.error
    return committed.offset


# --- 1. commit and abort ------------------------------------------------------------------------


def test_java_transactional_producer_commits_and_aborts(broker, java_tools):
    bootstrap, topic, group = broker.bootstrap_servers, "txn-commit-abort", "txn-commit-abort-group"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    facts = parse(java_tools.run(TRANSACTIONS, "commit-abort", bootstrap, topic, PARTITIONS, "java-commit-abort", group,
                                 timeout_s=120).stdout)
    first, aborted, second = values_of("first"), values_of("aborted"), values_of("second")

    # Offsets as acknowledged: each transaction's end is a marker that takes one offset.
    assert {name: dict(by_partition) for name, by_partition in facts.acked.items()} == {
        "first": {p: [0, 1, 2] for p in range(PARTITIONS)},
        "aborted": {p: [4, 5, 6] for p in range(PARTITIONS)},  # the commit marker of "first" at 3
        "second": {p: [8, 9, 10] for p in range(PARTITIONS)},  # the abort marker at 7
    }

    # While "second" is open: the last stable offset is where it begins; its records and its group
    # offset are invisible to the committed view, visible to read_uncommitted.
    assert facts.end["read_committed-open"] == {p: 8 for p in range(PARTITIONS)}
    assert facts.end["read_uncommitted-open"] == {p: 11 for p in range(PARTITIONS)}
    assert facts.values("read_committed-open") == first
    assert facts.values("read_uncommitted-open") == joined(first, aborted, second)
    assert facts.group_offsets["admin-open"] == (topic, 0, 3)

    # After the commit of "second": the commit marker at 11; no open transaction.
    assert facts.end["read_committed"] == facts.end["read_uncommitted"] == {p: 12 for p in range(PARTITIONS)}
    assert facts.values("read_committed") == joined(first, second)
    assert facts.offsets("read_committed") == {p: [0, 1, 2, 8, 9, 10] for p in range(PARTITIONS)}
    assert facts.values("read_uncommitted") == joined(first, aborted, second)
    assert facts.offsets("read_uncommitted") == {p: [0, 1, 2, 4, 5, 6, 8, 9, 10] for p in range(PARTITIONS)}
    # the aborted transaction's offset (99) never counted: the group is at "second"'s 6
    assert facts.group_offsets["committed"] == (topic, 0, 6)

    # librdkafka, a second client, sees the same
    committed = read_with_librdkafka(bootstrap, topic, range(PARTITIONS))
    assert {p: [value for _o, _k, value in rows] for p, rows in committed.items()} == joined(first, second)
    uncommitted = read_with_librdkafka(bootstrap, topic, range(PARTITIONS), isolation="read_uncommitted")
    assert {p: [value for _o, _k, value in rows] for p, rows in uncommitted.items()} == joined(first, aborted, second)
    assert committed_offset_with_librdkafka(bootstrap, group, topic, 0) == 6


# --- 2. zombie fencing --------------------------------------------------------------------------


@pytest.mark.parametrize("zombie_next", ["commit", "send"])
def test_java_producer_with_the_same_transactional_id_fences_the_first(broker, java_tools, zombie_next):
    """The zombie's open transaction is aborted by the successor's initTransactions. Its next commit
    fails with ProducerFencedException; a send first fails with InvalidProducerEpochException (an
    abortable error since KIP-588, which the following commit repeats) and the abort it then tries
    with ProducerFencedException."""
    bootstrap, topic = broker.bootstrap_servers, f"txn-fence-{zombie_next}"
    create_topic(bootstrap, topic, partitions=1)
    result = java_tools.run(TRANSACTIONS, "fence", bootstrap, topic, f"java-fence-{zombie_next}", zombie_next,
                            timeout_s=120)
    facts = parse(result.stdout)
    fenced = "org.apache.kafka.common.errors.ProducerFencedException"
    epoch = "org.apache.kafka.common.errors.InvalidProducerEpochException"
    if zombie_next == "commit":
        expected = ["successor initialized", f"fenced commit {fenced}", f"fenced abort {fenced}"]
    else:
        expected = ["successor initialized", f"fenced send {epoch}", f"fenced commit {epoch}", f"fenced abort {fenced}"]
    assert facts.other == expected, result.stdout

    # zombie-0 at 0, the abort marker the successor's initTransactions caused at 1, successor-0 at 2
    assert dict(facts.acked) == {"zombie": {0: [0]}, "successor": {0: [2]}}
    assert dict(facts.records["read_committed"]) == {0: [(2, "successor", "successor-0")]}
    assert dict(facts.records["read_uncommitted"]) == {0: [(0, "zombie", "zombie-0"), (2, "successor", "successor-0")]}


# --- 3. a producer that dies inside a transaction ----------------------------------------------


def test_java_producer_that_dies_mid_transaction_is_aborted_after_its_timeout(start_broker, java_tools):
    broker = start_broker(**{"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500})
    bootstrap, topic, transactional_id = broker.bootstrap_servers, "txn-crash", "java-crash"
    create_topic(bootstrap, topic, partitions=2)
    crashed = java_tools.run(TRANSACTIONS, "crash", bootstrap, topic, 2, transactional_id, 2000)
    assert parse(crashed.stdout).other == ["open"]

    started = time.monotonic()
    # waits (up to 60 s) until no transaction is open, then reads
    facts = parse(java_tools.run(TRANSACTIONS, "read", bootstrap, topic, 2, timeout_s=120).stdout)
    assert time.monotonic() - started < 30  # 2 s of timeout, then a cleanup round every 0.5 s
    assert facts.end["read_committed"] == facts.end["read_uncommitted"] == {0: 2, 1: 2}  # record + abort marker
    assert dict(facts.records["read_committed"]) == {}
    assert facts.values("read_uncommitted") == values_of("crashed", range(2), 1)

    described = _table(_transactions(java_tools, bootstrap, "describe", "--transactional-id", transactional_id))
    assert len(described) == 1 and described[0]["TransactionState"] == "CompleteAbort", described
    assert described[0]["TransactionTimeoutMs"] == "2000" and described[0]["TopicPartitions"] == ""


# --- 4. Kafka Streams, exactly_once_v2 ---------------------------------------------------------

STREAMS_WORDS = 6
STREAMS_RECORDS = 600  # in two halves, one run of the application each


def _streams_input(start: int, stop: int) -> list[Message]:
    # Timestamps of now: Streams gives its output the input's timestamps, and records older than
    # retention.ms (7 days) may be deleted by retention while the test reads them.
    now_ms = int(time.time() * 1000)
    return [Message(i % PARTITIONS, 0, f"k{i}".encode(), f"Word{i % STREAMS_WORDS}".encode(), (), now_ms)
            for i in range(start, stop)]


def test_kafka_streams_exactly_once_v2_counts_every_record_once(group_broker, java_tools, tmp_path):
    bootstrap, source, sink, application_id = group_broker.bootstrap_servers, "words", "word-counts", "eos-word-count"
    create_topic(bootstrap, source, partitions=PARTITIONS)
    create_topic(bootstrap, sink, partitions=PARTITIONS)
    state_dir = tmp_path / "streams-state"
    half = STREAMS_RECORDS // 2

    for run_number, (start, stop) in enumerate([(0, half), (half, STREAMS_RECORDS)], 1):
        produce(bootstrap, source, _streams_input(start, stop))
        result = java_tools.run(STREAMS_APP, bootstrap, application_id, source, sink, state_dir, stop, quick=False,
                                timeout_s=150)
        facts = parse(result.stdout)
        assert facts.other[:1] == ["streams NOT_RUNNING"], result.stdout[-3000:]  # closed cleanly, not ERROR
        # the application's committed input offsets: everything produced so far, and no further
        assert facts.other[1:] == [f"input-offset {p} {stop // PARTITIONS}" for p in range(PARTITIONS)]

        # Every word counted once per occurrence: its updates 1, 2, ..., n, each exactly once, in
        # one partition (the output is keyed by the word), in order.
        per_word: dict[str, list[int]] = defaultdict(list)
        partition_of: dict[str, set[int]] = defaultdict(set)
        for partition, rows in facts.records["read_committed"].items():
            for _offset, word, count in rows:
                per_word[word].append(int(count))
                partition_of[word].add(partition)
        n = stop // STREAMS_WORDS
        assert dict(per_word) == {f"word{w}": list(range(1, n + 1)) for w in range(STREAMS_WORDS)}, f"run {run_number}"
        assert all(len(partitions) == 1 for partitions in partition_of.values()), dict(partition_of)

        # written in transactions: every partition with output has at least one marker in it
        assert facts.end["read_committed"] == facts.end["read_uncommitted"]
        for partition, rows in facts.records["read_committed"].items():
            assert facts.end["read_committed"][partition] > len(rows), (partition, facts.end, len(rows))

    # librdkafka reads the same committed output
    expected = {p: [(offset, word, count) for offset, word, count in rows]
                for p, rows in facts.records["read_committed"].items()}
    assert {p: rows for p, rows in read_with_librdkafka(bootstrap, sink, range(PARTITIONS)).items() if rows} == expected


# --- 5. kafka-transactions ---------------------------------------------------------------------


def _transactions(java_tools, bootstrap: str, *args: object) -> str:
    return java_tools.run(TRANSACTIONS_COMMAND, "--bootstrap-server", bootstrap, *args).stdout


def _table(text: str) -> list[dict[str, str]]:
    """kafka-transactions' tab-separated table: a header line, then one line per row."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, text
    header = [cell.strip() for cell in lines[0].rstrip("\t").split("\t")]
    rows = []
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.rstrip("\n").split("\t")]
        if cells and cells[-1] == "" and len(cells) == len(header) + 1:
            cells = cells[:-1]  # the trailing tab after the last column
        assert len(cells) == len(header), f"{line!r} does not match the header {header}"
        rows.append(dict(zip(header, cells)))
    return rows


class HeldTransaction:
    """`JavaTransactions hold`: a producer that keeps its transaction open until told to end it."""

    def __init__(self, java_tools, bootstrap: str, topic: str, partitions: int, transactional_id: str):
        self.process = subprocess.Popen(
            java_tools.command(TRANSACTIONS, "hold", bootstrap, topic, partitions, transactional_id),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines), daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()

    @staticmethod
    def _pump(stream, lines: queue.Queue) -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def await_line(self, wanted: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is not None:
                self.stdout.append(line)
                if line == wanted:
                    return
                continue
            pytest.fail(f"JavaTransactions hold: no line {wanted!r} (exit status {self.process.poll()})\n"
                        f"--- stdout\n" + "\n".join(self.stdout) + "\n--- stderr\n" + "".join(self.stderr)[-4000:],
                        pytrace=False)

    def end(self, how: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(how + "\n")
        self.process.stdin.flush()
        self.await_line({"commit": "committed", "abort": "aborted"}[how])
        assert self.process.wait(60) == 0, "".join(self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_kafka_transactions_tool_lists_and_describes_transactions(broker, java_tools):
    bootstrap, topic, transactional_id = broker.bootstrap_servers, "txn-tool", "tool-txn"
    create_topic(bootstrap, topic, partitions=2)
    held = HeldTransaction(java_tools, bootstrap, topic, 2, transactional_id)
    try:
        held.await_line("open")  # one record sent to each partition, acknowledged, not committed

        listed = {row["TransactionalId"]: row for row in _table(_transactions(java_tools, bootstrap, "list"))}
        assert listed[transactional_id]["TransactionState"] == "Ongoing", listed
        producer_id = listed[transactional_id]["ProducerId"]
        assert int(producer_id) >= 0
        assert re.fullmatch(r"\d+", listed[transactional_id]["Coordinator"]), listed

        described = _table(_transactions(java_tools, bootstrap, "describe", "--transactional-id", transactional_id))
        assert len(described) == 1, described
        ongoing = described[0]
        assert (ongoing["TransactionalId"], ongoing["ProducerId"], ongoing["TransactionState"]) == (
            transactional_id, producer_id, "Ongoing")
        assert ongoing["CoordinatorId"] == listed[transactional_id]["Coordinator"]
        assert ongoing["TransactionTimeoutMs"] == "60000"  # the Java producer's default transaction.timeout.ms
        assert sorted(ongoing["TopicPartitions"].split(",")) == [f"{topic}-0", f"{topic}-1"]
        assert int(ongoing["CurrentTransactionStartTimeMs"]) > 1_600_000_000_000
        assert int(ongoing["TransactionDurationMs"]) >= 0

        producers = _table(_transactions(java_tools, bootstrap, "describe-producers", "--topic", topic, "--partition", 0))
        assert [(row["ProducerId"], row["ProducerEpoch"], row["LastSequence"], row["CurrentTransactionStartOffset"])
                for row in producers] == [(producer_id, ongoing["ProducerEpoch"], "0", "0")]

        held.end("commit")
    finally:
        held.kill()

    listed = {row["TransactionalId"]: row for row in _table(_transactions(java_tools, bootstrap, "list"))}
    assert (listed[transactional_id]["ProducerId"], listed[transactional_id]["TransactionState"]) == (
        producer_id, "CompleteCommit")
    described = _table(_transactions(java_tools, bootstrap, "describe", "--transactional-id", transactional_id))
    assert [(row["TransactionalId"], row["ProducerId"], row["TransactionState"], row["TopicPartitions"])
            for row in described] == [(transactional_id, producer_id, "CompleteCommit", "")]
    producers = _table(_transactions(java_tools, bootstrap, "describe-producers", "--topic", topic, "--partition", 0))
    assert [(row["ProducerId"], row["CurrentTransactionStartOffset"]) for row in producers] == [(producer_id, "None")]
