"""Network namespaces for cluster tests: a bridge in the test's namespace (where clients run) and a
namespace per host (ZooKeeper, each broker), each with one veth on the bridge. A host is cut off
from others by blackhole routes in its namespace (nothing it sends them arrives, so its TCP with
them fails both ways), which needs no tc actions or iptables; it is healed by removing them.
Needs root and iproute2.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from conftest import BrokerProcess
from odradek.cli.zookeeper import server_command

from .conftest import CLUSTER_DEFAULTS, ZooKeeperServer, broker_outputs, wait_until_formed

AVAILABLE = os.geteuid() == 0 and shutil.which("ip") is not None

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



def namespaced_cluster(network: "Network", work_dir: Path, count: int, started: list, **overrides: str):
    """ZooKeeper and brokers 1..count, each in its own namespace; returns (zookeeper, {id: broker},
    addresses) once every broker's Metadata lists all of them. Every process is appended to
    `started` as soon as it runs, for the caller to stop."""
    (work_dir / "zk").mkdir(parents=True)
    zookeeper = NamespacedZooKeeper(work_dir / "zk", network.host("zk", 2), network.exec_prefix("zk"))
    started.append(zookeeper)
    zookeeper.start()
    addresses = {node_id: network.host(f"b{node_id}", 10 + node_id) for node_id in range(1, count + 1)}
    brokers: dict[int, NamespacedBroker] = {}
    for node_id, address in addresses.items():
        settings = {**{k: str(v) for k, v in CLUSTER_DEFAULTS.items()}, "broker.id": str(node_id),
                    "zookeeper.connect": f"{zookeeper.connect}/netns-test", **overrides}
        broker_dir = work_dir / f"broker-{node_id}"
        broker_dir.mkdir()
        brokers[node_id] = NamespacedBroker(broker_dir, settings, address, network.exec_prefix(f"b{node_id}"))
        started.append(brokers[node_id])
        brokers[node_id].start()
    wait_until_formed(brokers, lambda: broker_outputs(brokers))
    return zookeeper, brokers, addresses


def stop_all(processes: list) -> None:
    """Stop every process a test started (ZooKeeper and brokers), whatever state it is in."""
    for process in processes:
        try:
            process.stop()
        except Exception:  # noqa: BLE001 - cleaning up whatever is left
            pass
