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

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import confluent_kafka
import pytest

from conftest import BrokerProcess
from odradek.cli.zookeeper import server_command

from .conftest import CLUSTER_DEFAULTS, ZooKeeperServer
from .test_replication import create_replicated_topic, describe, replica_records

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="network namespaces need root and iproute2",
)

SUBNET = "10.231.{suffix}"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


class Network:
    """A bridge in this namespace and one namespace per host, each with one veth on the bridge."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:5]
        self.bridge = f"odkbr{tag}"
        self.prefix = f"odk{tag}"
        self.octet = 1 + int(tag, 16) % 250
        self.namespaces: list[str] = []
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"10.231.{self.octet}.1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    def host(self, name: str, index: int) -> str:
        """A namespace `<prefix>-<name>` at 10.231.x.<index>; returns its address."""
        namespace, veth = f"{self.prefix}-{name}", f"{self.prefix}v{index}"
        address = f"10.231.{self.octet}.{index}"
        sh("ip", "netns", "add", namespace)
        self.namespaces.append(namespace)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        sh("ip", "link", "set", veth, "master", self.bridge)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        sh("ip", "-n", namespace, "link", "set", "eth0", "up")
        sh("ip", "-n", namespace, "link", "set", "lo", "up")
        return address

    def cut(self, name: str, destinations: list[str]) -> None:
        """Drop everything the host sends to `destinations` (its TCP with them then fails both ways)."""
        self._cut = (name, list(destinations))
        for destination in destinations:
            sh("ip", "-n", f"{self.prefix}-{name}", "route", "add", "blackhole", f"{destination}/32")

    def heal(self, name: str) -> None:
        cut_name, destinations = self._cut
        for destination in destinations:
            sh("ip", "-n", f"{self.prefix}-{cut_name}", "route", "del", "blackhole", f"{destination}/32")

    def exec_prefix(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", f"{self.prefix}-{name}"]

    def remove(self) -> None:
        for namespace in self.namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)


class NamespacedBroker(BrokerProcess):
    def __init__(self, work_dir: Path, overrides: dict[str, str], host: str, prefix: list[str]) -> None:
        super().__init__(work_dir, overrides)  # any port is free in a namespace of its own
        self.host = host
        self.prefix = prefix

    def command(self) -> list[str]:
        return self.prefix + super().command()


class NamespacedZooKeeper(ZooKeeperServer):
    def __init__(self, work_dir: Path, address: str, prefix: list[str]) -> None:
        super().__init__(work_dir)
        self.address = address
        self.prefix = prefix

    @property
    def connect(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self) -> "NamespacedZooKeeper":
        with open(self.output, "ab") as output:
            self.process = subprocess.Popen(self.prefix + server_command(self.config, self.lib, log_level="warn"),
                                            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as sock:
                    sock.sendall(b"srvr")
                    if b"Mode:" in sock.recv(4096):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"ZooKeeper in its namespace did not start\n{self.output.read_text()}")
            time.sleep(0.1)


def test_isolated_leader_acknowledges_nothing_and_truncates_after_healing(tmp_path, request):
    network = Network()
    processes: list = []
    try:
        (tmp_path / "zk").mkdir()
        zookeeper = NamespacedZooKeeper(tmp_path / "zk", network.host("zk", 2), network.exec_prefix("zk"))
        processes.append(zookeeper.start())
        addresses = {node_id: network.host(f"b{node_id}", 10 + node_id) for node_id in (1, 2, 3)}
        brokers: dict[int, NamespacedBroker] = {}
        for node_id, address in addresses.items():
            overrides = {**{k: str(v) for k, v in CLUSTER_DEFAULTS.items()},
                         "broker.id": str(node_id), "zookeeper.connect": f"{zookeeper.connect}/partition-test"}
            work_dir = tmp_path / f"broker-{node_id}"
            work_dir.mkdir()
            broker = NamespacedBroker(work_dir, overrides, address, network.exec_prefix(f"b{node_id}"))
            request.node._odradek_brokers = list(brokers.values()) + [broker]
            brokers[node_id] = broker
            processes.append(broker.start())
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
