"""What the cluster tests run and check: a steady idempotent acks=all producer, the wait helper,
and reading a replica's own log files.

`LoadProducer(bootstrap, topic, partitions)` sends numbered records ("r00000042"), round-robin over
the partitions, on a thread (a context manager); it keeps every acknowledged value and every
delivery error. Record n goes to partition n % partitions, so each partition's values increase.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import confluent_kafka

from odradek.clock import Clock
from odradek.log.log_config import LogConfig
from odradek.log.partition_log import PartitionLog
from odradek.protocol.records import decode_records, read_batch_header


class LoadProducer:
    def __init__(self, bootstrap: str, topic: str, partitions: int, **config: object) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.config = {
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 120000, **config,
        }
        self.acknowledged: list[bytes] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        producer = confluent_kafka.Producer(self.config)

        def delivered(error, message) -> None:
            if error is not None:
                self.failures.append(str(error))
            else:
                self.acknowledged.append(message.value())

        sequence = 0
        while not self._stop.is_set():
            try:
                producer.produce(self.topic, value=f"r{sequence:09d}".encode(), partition=sequence % self.partitions,
                                 on_delivery=delivered)
                sequence += 1
                if sequence % 200 == 0:
                    time.sleep(0.01)  # a steady stream, not a flood: the machine runs three brokers too
            except BufferError:
                producer.poll(0.05)
            producer.poll(0)
        producer.flush(self.config["message.timeout.ms"] / 1000 + 30)

    def acknowledged_in(self, partition: int) -> list[bytes]:
        return [value for value in self.acknowledged if int(value[1:]) % self.partitions == partition]

    def wait_for_more(self, count: int, what: str, timeout_s: float = 60) -> None:
        start = len(self.acknowledged)
        wait_for(lambda: len(self.acknowledged) >= start + count, timeout_s, what)

    def __enter__(self) -> "LoadProducer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(self.config["message.timeout.ms"] / 1000 + 60)


def wait_for(condition, timeout_s: float, what: str, describe=lambda: "") -> float:
    """Poll `condition` (exceptions count as "not yet") until true; the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - not there yet (no leader, node missing, ...)
            pass
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not true after {timeout_s:.0f} s: {what}\n{describe()}")
        time.sleep(0.1)


def replica_records(log_dir: Path, topic: str, partition: int) -> list[tuple[int, bytes]]:
    """(offset, value) of every record in one replica's log, read from its files."""
    log = PartitionLog.open(log_dir / f"{topic}-{partition}", LogConfig(), Clock(), clean_shutdown=True)
    try:
        records, offset = [], log.log_start_offset
        while offset < log.log_end_offset:
            data = log.read(offset, 1 << 20, log.log_end_offset)
            position = 0
            while position < len(data):
                header = read_batch_header(data, position)
                records += [(r.offset, r.value) for r in decode_records(data, header)]
                position += header.size
                offset = header.next_offset
        return records
    finally:
        log.close()


def assert_replicas_hold(brokers: dict, load: LoadProducer) -> None:
    """Every acknowledged record on every replica, once, each partition in order (read from the
    brokers' files, so call it with the brokers stopped)."""
    assert not load.failures, load.failures[:5]
    for partition in range(load.partitions):
        acknowledged = load.acknowledged_in(partition)
        assert len(acknowledged) == len(set(acknowledged)), f"partition {partition}: acknowledged twice"
        for node_id, broker in brokers.items():
            values = [value for _, value in replica_records(broker.log_dir, load.topic, partition)]
            assert len(values) == len(set(values)), f"broker {node_id} holds a record of partition {partition} twice"
            assert values == sorted(values), f"broker {node_id} holds partition {partition} out of order"
            missing = set(acknowledged) - set(values)
            assert not missing, (f"broker {node_id} lacks {len(missing)} acknowledged records of partition {partition}, "
                                 f"e.g. {sorted(missing)[:3]}")
