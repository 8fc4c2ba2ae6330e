"""A leader cut off from ZooKeeper and the other brokers, while its clients can still reach it.

Each broker and ZooKeeper live in network namespaces of their own, joined by a bridge in the
test's namespace (where the clients run). Cutting the leader off is a blackhole route in its
namespace for ZooKeeper's and the other brokers' addresses (no tc actions or iptables needed):
nothing it sends them arrives, so its TCP with them fails both ways; the clients still reach it. What Kafka promises, and what this checks: the isolated leader acknowledges no acks=all
write (its followers cannot fetch, and without ZooKeeper it cannot shrink its ISR, so its high
watermark stands still); the majority side elects a new leader once the isolated broker's session
expires, and producing goes on there; after healing, the old leader truncates the tail it wrote
alone and catches up. 0 acknowledged records lost, none twice.
"""

from __future__ import annotations

import threading
import time

import confluent_kafka
import pytest

from .netns import AVAILABLE, Network, namespaced_cluster
from .test_replication import create_replicated_topic, describe, replica_records

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="network namespaces need root and iproute2")

def test_isolated_leader_acknowledges_nothing_and_truncates_after_healing(tmp_path, request):
    network = Network()
    processes: list = []
    try:
        zookeeper, brokers, addresses = namespaced_cluster(network, tmp_path, 3, processes)
        request.node._odradek_brokers = list(brokers.values())
        bootstrap = ",".join(b.bootstrap_servers for b in brokers.values())
        create_replicated_topic(bootstrap, "split", 1, **{"min.insync.replicas": "2"})
        leader = describe(bootstrap, "split")[0][0]
        others = [n for n in brokers if n != leader]

        acknowledged: list[bytes] = []
        failures: list[str] = []
        stop = threading.Event()

        def keep_producing() -> None:
            producer = confluent_kafka.Producer({
                "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                "message.timeout.ms": 120000, "request.timeout.ms": 10000,
            })

            def delivered(error, message) -> None:
                if error is None:
                    acknowledged.append(message.value())
                else:
                    failures.append(str(error))

            sequence = 0
            while not stop.is_set():
                try:
                    producer.produce("split", value=f"s{sequence:08d}".encode(), on_delivery=delivered)
                    sequence += 1
                    if sequence % 100 == 0:
                        time.sleep(0.01)
                except BufferError:
                    producer.poll(0.05)
                producer.poll(0)
            producer.flush(150)

        thread = threading.Thread(target=keep_producing)
        thread.start()
        try:
            _wait(lambda: len(acknowledged) > 1000, 60, "records before the partition")
            network.cut(f"b{leader}", [zookeeper.address] + [addresses[n] for n in others])
            cut_at = len(acknowledged)
            time.sleep(2)
            acked_while_isolated_early = len(acknowledged) - cut_at
            majority = ",".join(brokers[n].bootstrap_servers for n in others)
            _wait(lambda: describe(majority, "split")[0][0] in others, 60, "a new leader on the majority side")
            print(f"isolated leader {leader}; a new leader took over; {acked_while_isolated_early} acknowledgements "
                  "arrived in the first 2 s (in flight before the cut)")
            _wait(lambda: len(acknowledged) > cut_at + 1000, 90, "producing goes on with the new leader")
            network.heal(f"b{leader}")
            _wait(lambda: sorted(describe(majority, "split")[0][2]) == [1, 2, 3], 90, "the old leader back in the ISR")
        finally:
            stop.set()
            thread.join(180)
        assert not failures, failures[:5]
        assert len(acknowledged) == len(set(acknowledged))
        time.sleep(1)
        for broker in brokers.values():
            assert broker.stop(timeout_s=30) == 0, broker.output()[-3000:]
        logs = {n: [value for _, value in replica_records(b.log_dir, "split", 0)] for n, b in brokers.items()}
        for node_id, values in logs.items():
            assert len(values) == len(set(values)), f"broker {node_id} holds a record twice"
            missing = set(acknowledged) - set(values)
            assert not missing, f"broker {node_id} lacks {len(missing)} acknowledged records"
        assert logs[leader] == logs[others[0]], "the old leader kept a divergent tail"
    finally:
        for process in processes:
            try:
                process.stop()
            except Exception:  # noqa: BLE001 - cleaning up whatever is left
                pass
        network.remove()


def _wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - not there yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout_s:.0f} s: {what}")
        time.sleep(0.2)
