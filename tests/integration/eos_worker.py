"""A consume-transform-produce application with exactly-once semantics, run as its own process
(tests kill it with SIGKILL at random points): read `input` in group `group`, write each value
upper-cased to `output`, and commit the consumer's offsets in the same transaction. It restarts
where the last committed transaction left off, and exits when `expected` input records have been
committed (counted from the group's offsets).

usage: python eos_worker.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID EXPECTED
"""

from __future__ import annotations

import sys

import confluent_kafka

BATCH = 20


def main(bootstrap: str, source: str, sink: str, group: str, transactional_id: str, expected: int) -> None:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        # static membership: a restarted worker takes its killed predecessor's place at once
        "group.instance.id": f"{group}-worker", "session.timeout.ms": 10000,
        "auto.offset.reset": "earliest", "isolation.level": "read_committed",
    })
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(60)
    consumer.subscribe([source])
    done = 0
    while True:
        messages = consumer.consume(BATCH, timeout=0.5)
        messages = [m for m in messages if m.error() is None]
        if not messages:
            committed = consumer.committed(consumer.assignment(), timeout=10) if consumer.assignment() else []
            done = sum(max(tp.offset, 0) for tp in committed)
            if done >= expected:
                break
            continue
        producer.begin_transaction()
        for message in messages:
            producer.produce(sink, key=message.key(), value=message.value().upper(), partition=message.partition())
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(60)
    consumer.close()
    print(f"done: {done} records committed", flush=True)


if __name__ == "__main__":
    bootstrap, source, sink, group, transactional_id, expected = sys.argv[1:]
    main(bootstrap, source, sink, group, transactional_id, int(expected))
