"""franz-go's transactional producer against a broker: `franzgo-compat transact` (go/transactions.go).

franz-go picks its transaction protocol from the cluster: with the finalized feature
transaction.version >= 2 in ApiVersions it uses KIP-890 part 2 (Produce v12+ adds partitions to the
transaction itself, EndTxn v5 bumps the epoch every transaction), otherwise AddPartitionsToTxn and
EndTxn v4 and below. It commits a transaction, aborts one and commits another over 3 partitions,
then reads the topic with its read_committed consumer, which must see exactly the committed
records; confluent-kafka (librdkafka) checks the same with read_committed and read_uncommitted.
"""

from __future__ import annotations

import json

from .conftest import create_topic, run
from .test_java_transactions import joined, read_with_librdkafka, values_of

PARTITIONS = 3


def test_franz_go_transactional_producer_commits_and_aborts(broker, franz_go):
    bootstrap, topic = broker.bootstrap_servers, "franz-txn"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    result = run([franz_go, "transact", "-brokers", bootstrap, "-topic", topic, "-partitions", PARTITIONS,
                  "-transactional-id", "franz-txn"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    acked: dict[tuple[str, int], list[int]] = {}
    for line in lines:
        if "transaction" in line:
            acked.setdefault((line["transaction"], line["partition"]), []).append(line["offset"])
    read = sorted((line["partition"], line["offset"], line["key"], line["value"]) for line in lines if "key" in line)

    # each transaction's marker takes an offset: the commit marker of "first" at 3, the abort marker at 7
    assert {key: sorted(offsets) for key, offsets in acked.items()} == {
        (name, p): offsets for name, offsets in [("first", [0, 1, 2]), ("aborted", [4, 5, 6]), ("second", [8, 9, 10])]
        for p in range(PARTITIONS)
    }
    first, aborted, second = values_of("first"), values_of("aborted"), values_of("second")
    committed_records = sorted(
        (p, offset, value.split("-")[0], value)
        for p, values in joined(first, second).items()
        for offset, value in zip([0, 1, 2, 8, 9, 10], values)
    )
    assert read == committed_records  # franz-go, read_committed

    stored = read_with_librdkafka(bootstrap, topic, range(PARTITIONS))
    assert sorted((p, offset, key, value) for p, rows in stored.items() for offset, key, value in rows) == committed_records
    everything = read_with_librdkafka(bootstrap, topic, range(PARTITIONS), isolation="read_uncommitted")
    assert {p: [value for _o, _k, value in rows] for p, rows in everything.items()} == joined(first, aborted, second)
