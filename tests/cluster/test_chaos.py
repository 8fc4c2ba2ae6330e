"""Chaos with a checker: random kill -9s, restarts, SIGTERMs and network partitions on a 3-broker
cluster (each broker in a network namespace) while an idempotent acks=all producer runs; then
everything is healed and proof is taken from every replica's files: no acknowledged record lost,
none written twice, every partition in order.

Bounded for CI (ODRADEK_CHAOS_SECONDS, default 45); run it longer on demand, e.g.
ODRADEK_CHAOS_SECONDS=900 make test PYTEST_ARGS="tests/cluster/test_chaos.py -s". The random
seed is printed, and ODRADEK_CHAOS_SEED replays a run.
"""

from __future__ import annotations

import os
import random
import threading
import time

import confluent_kafka
import pytest

from .netns import AVAILABLE, Network, namespaced_cluster
from .test_replication import create_replicated_topic, describe, replica_records

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="network namespaces need root and iproute2")

PARTITIONS = 3


def test_random_faults_lose_no_acknowledged_record(tmp_path, request):
    seconds = float(os.environ.get("ODRADEK_CHAOS_SECONDS", "45"))
    seed = int(os.environ.get("ODRADEK_CHAOS_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    print(f"chaos: {seconds:.0f} s, seed {seed}")
    network = Network()
    processes: list = []
    try:
        zookeeper, brokers, addresses = namespaced_cluster(network, tmp_path, 3, processes)
        request.node._odradek_brokers = list(brokers.values())
        bootstrap = ",".join(b.bootstrap_servers for b in brokers.values())
        create_replicated_topic(bootstrap, "chaos", PARTITIONS, **{"min.insync.replicas": "2"})

        acknowledged: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        failures: list[str] = []
        stop = threading.Event()

        def keep_producing() -> None:
            producer = confluent_kafka.Producer({
                "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                "message.timeout.ms": 300000, "request.timeout.ms": 10000,
            })

            def delivered(error, message) -> None:
                if error is None:
                    acknowledged[message.partition()].append(message.value())
                else:
                    failures.append(str(error))

            sequence = 0
            while not stop.is_set():
                try:
                    producer.produce("chaos", value=f"c{sequence:09d}".encode(), partition=sequence % PARTITIONS,
                                     on_delivery=delivered)
                    sequence += 1
                    if sequence % 100 == 0:
                        time.sleep(0.01)
                except BufferError:
                    producer.poll(0.05)
                producer.poll(0)
            producer.flush(300)

        thread = threading.Thread(target=keep_producing)
        thread.start()
        events = []
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                node_id = rng.choice(sorted(brokers))
                broker = brokers[node_id]
                action = rng.choice(["kill", "sigterm", "partition"])
                events.append(f"{action} broker {node_id}")
                if action == "kill":
                    broker.kill()
                    time.sleep(rng.uniform(1, 8))
                    broker.start()
                elif action == "sigterm":
                    assert broker.stop(timeout_s=40) == 0, broker.output()[-3000:]
                    time.sleep(rng.uniform(0.5, 3))
                    broker.start()
                else:
                    network.cut(f"b{node_id}", [zookeeper.address] + [a for n, a in addresses.items() if n != node_id])
                    time.sleep(rng.uniform(2, 12))
                    network.heal(f"b{node_id}")
                time.sleep(rng.uniform(1, 4))
            events.append("healed; waiting for every ISR to be full")
            _wait(lambda: all(sorted(isr) == [1, 2, 3] for _, _, isr in describe(bootstrap, "chaos").values()),
                  120, "every ISR full again")
            before = sum(len(v) for v in acknowledged.values())
            _wait(lambda: sum(len(v) for v in acknowledged.values()) > before + 500, 60, "producing after the chaos")
        finally:
            stop.set()
            thread.join(330)
            print("chaos events:", "; ".join(events))
        print(f"chaos: {sum(len(v) for v in acknowledged.values())} records acknowledged")
        assert not failures, failures[:5]
        time.sleep(1)
        for broker in brokers.values():
            assert broker.stop(timeout_s=40) == 0, broker.output()[-3000:]
        for partition in range(PARTITIONS):
            acked = acknowledged[partition]
            assert len(acked) == len(set(acked)), f"partition {partition}: a record was acknowledged twice"
            for node_id, broker in brokers.items():
                values = [value for _, value in replica_records(broker.log_dir, "chaos", partition)]
                assert len(values) == len(set(values)), f"broker {node_id} partition {partition}: a record twice"
                assert values == sorted(values), f"broker {node_id} partition {partition}: out of order"
                missing = set(acked) - set(values)
                assert not missing, f"broker {node_id} partition {partition}: {len(missing)} acknowledged records lost"
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
