"""KafkaJS's transactional producer against a broker: the script node/kafkajs-transactions.js.

KafkaJS implements transactions with the oldest versions of the transaction APIs (InitProducerId,
AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v0-1, TxnOffsetCommit up to v2). The script commits
a transaction, aborts one and commits another, over 3 partitions with a group offset in each
(sendOffsets), then reads the topic with a KafkaJS consumer (read_committed, its default): it must
see exactly the committed records. confluent-kafka (librdkafka) checks the same from outside:
read_committed and read_uncommitted reads and the group's committed offset.
"""

from __future__ import annotations

import json

import confluent_kafka

from .conftest import COMPAT_DIR, create_topic
from .test_java_transactions import committed_offset_with_librdkafka, joined, read_with_librdkafka, values_of

SCRIPT = COMPAT_DIR / "node" / "kafkajs-transactions.js"
PARTITIONS = 3


def test_kafkajs_transactional_producer_commits_and_aborts(group_broker, kafkajs):
    bootstrap, topic, group = group_broker.bootstrap_servers, "kafkajs-txn", "kafkajs-txn-group"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    # The group has no offset yet. Asking (librdkafka retries until the group's coordinator is
    # ready) also makes sure the coordinator is loaded: KafkaJS gives up on a TxnOffsetCommit
    # answered NOT_COORDINATOR, as on a fresh Kafka whose __consumer_offsets is still loading.
    assert committed_offset_with_librdkafka(bootstrap, group, topic, 0) == confluent_kafka.OFFSET_INVALID
    result = kafkajs.run(SCRIPT, bootstrap, topic, PARTITIONS, "kafkajs-txn", group)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    acked = {(line["transaction"], line["partition"]): line["baseOffset"] for line in lines if "transaction" in line}
    read = sorted((line["partition"], line["offset"], line["key"], line["value"]) for line in lines if "offset" in line)

    # each transaction's marker takes an offset: "aborted" starts after the commit marker at 3,
    # "second" after the abort marker at 7
    assert acked == {(name, p): base for name, base in [("first", 0), ("aborted", 4), ("second", 8)]
                     for p in range(PARTITIONS)}
    first, aborted, second = values_of("first"), values_of("aborted"), values_of("second")
    committed_records = sorted(
        (p, offset, value.split("-")[0], value)
        for p, values in joined(first, second).items()
        for offset, value in zip([0, 1, 2, 8, 9, 10], values)
    )
    assert read == committed_records  # KafkaJS, read_committed

    stored = read_with_librdkafka(bootstrap, topic, range(PARTITIONS))
    assert sorted((p, offset, key, value) for p, rows in stored.items() for offset, key, value in rows) == committed_records
    everything = read_with_librdkafka(bootstrap, topic, range(PARTITIONS), isolation="read_uncommitted")
    assert {p: [value for _o, _k, value in rows] for p, rows in everything.items()} == joined(first, aborted, second)
    assert committed_offset_with_librdkafka(bootstrap, group, topic, 0) == 6
