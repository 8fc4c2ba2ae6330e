"""Cluster test harness: a real Apache ZooKeeper and separate broker processes.

One ZooKeeper server (3.9.5, the jars `odradek zookeeper` uses, cached in .cache/zookeeper) serves
the whole session; every test gets a cluster of its own under a fresh chroot, so tests never see
each other's brokers or topics. `cluster(n, **overrides)` starts n brokers (`broker.id` 1..n) as
the root conftest's BrokerProcess, each on its own port and log dir, and stops them all at the
end of the test (SIGTERM, then SIGKILL), also when the test fails; a failing test's report carries
every broker's log. Sessions expire after 6 s (ZooKeeper's minimum at a 2 s tick is 4 s), so a
killed broker is noticed quickly.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from conftest import REPO_ROOT, BrokerProcess, describe_exit, free_port
from odradek.cli.zookeeper import ensure_installed, server_command, write_config

from .load import wait_for

ZK_READY_TIMEOUT_S = 30.0
SESSION_TIMEOUT_MS = 6000
CLUSTER_DEFAULTS = {
    "zookeeper.session.timeout.ms": SESSION_TIMEOUT_MS,
    "zookeeper.connection.timeout.ms": 10000,
    "group.initial.rebalance.delay.ms": 0,
    "replica.lag.time.max.ms": 10000,
    "replica.fetch.wait.max.ms": 200,
    "controlled.shutdown.retry.backoff.ms": 2000,
}


class ZooKeeperServer:
    """A ZooKeeper process on a free port; `stop()` and `start()` again on the same data."""

    def __init__(self, work_dir: Path) -> None:
        self.port = free_port()
        self.work_dir = work_dir
        self.lib = ensure_installed(REPO_ROOT / ".cache" / "zookeeper", announce=lambda message: None)
        self.config = write_config(work_dir / "zoo.cfg", {"dataDir": str(work_dir / "data"), "clientPort": str(self.port)})
        self.output = work_dir / "zookeeper.log"
        self.process: subprocess.Popen | None = None

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ZooKeeperServer":
        with open(self.output, "ab") as output:
            self.process = subprocess.Popen(
                server_command(self.config, self.lib, log_level="warn"),
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + ZK_READY_TIMEOUT_S
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {describe_exit(self.process.returncode)}\n{self.output.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ZooKeeper did not answer within {ZK_READY_TIMEOUT_S:.0f} s\n{self.output.read_text()}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"srvr")
                return b"Mode:" in sock.recv(4096)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper")).start()
    yield server
    server.stop()


class Cluster:
    """Brokers 1..n of one cluster under its own chroot of the session's ZooKeeper."""

    def __init__(self, zookeeper: ZooKeeperServer, work_dir: Path, chroot: str) -> None:
        self.zookeeper = zookeeper
        self.work_dir = work_dir
        self.chroot = chroot
        self.brokers: dict[int, BrokerProcess] = {}

    @property
    def zookeeper_connect(self) -> str:
        return f"{self.zookeeper.connect}{self.chroot}"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(b.bootstrap_servers for b in self.brokers.values() if b.running)

    def add_broker(self, node_id: int, extra_listeners: str | None = None, **overrides: object) -> BrokerProcess:
        """Start broker `node_id`; `extra_listeners` are listened on besides its PLAINTEXT one."""
        settings = {**CLUSTER_DEFAULTS, "broker.id": node_id, "zookeeper.connect": self.zookeeper_connect, **overrides}
        # keyword names use _ for . (replica_lag_time_max_ms); a dotted name is kept as written
        names = {k: k if "." in k else k.replace("_", ".") for k in settings}
        broker = BrokerProcess(self.work_dir / f"broker-{node_id}", {names[k]: str(v) for k, v in settings.items()})
        if extra_listeners:
            broker.overrides["listeners"] = f"PLAINTEXT://{broker.host}:{broker.port},{extra_listeners}"
        self.brokers[node_id] = broker
        return broker.start()

    def wait_until_formed(self) -> None:
        wait_until_formed(self.brokers, self.outputs)

    def broker(self, node_id: int) -> BrokerProcess:
        return self.brokers[node_id]

    def zk(self) -> KazooClient:
        client = KazooClient(hosts=self.zookeeper_connect, timeout=10)
        client.start(timeout=10)
        return client

    def read(self, path: str):
        """A znode's JSON (or raw text), as zkCli.sh `get` shows it."""
        client = self.zk()
        try:
            data, _ = client.get(path)
        finally:
            client.stop()
            client.close()
        try:
            return json.loads(data)
        except ValueError:
            return data.decode()

    def partition_state(self, topic: str, partition: int) -> dict:
        return self.read(f"/brokers/topics/{topic}/partitions/{partition}/state")

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> float:
        """load.wait_for, with every broker's output in the failure."""
        return wait_for(condition, timeout_s, what, self.outputs)

    def outputs(self) -> str:
        return broker_outputs(self.brokers)

    def stop_all(self) -> list[str]:
        problems = []
        for node_id, broker in self.brokers.items():
            crashed = broker.process is not None and broker.process.poll() is not None and not broker.exit_expected
            was_running = broker.running
            code = broker.stop(timeout_s=30)
            if crashed:
                problems.append(f"broker {node_id} exited on its own with {describe_exit(code)}")
            elif was_running and code != 0:
                problems.append(f"broker {node_id} did not shut down cleanly: {describe_exit(code)}")
        return problems


def broker_outputs(brokers: dict[int, BrokerProcess]) -> str:
    """The end of every broker's log, for a failure's report."""
    return "\n".join(f"--- broker {node_id}\n{broker.output()[-6000:]}" for node_id, broker in brokers.items())


def wait_until_formed(brokers: dict[int, BrokerProcess], outputs: Callable[[], str]) -> None:
    """Until every running broker's Metadata lists all of them (they register in ZooKeeper
    just after their listeners open; a topic created earlier would see fewer brokers)."""
    from confluent_kafka.admin import AdminClient

    running = {n for n, b in brokers.items() if b.running}

    def formed() -> bool:
        for broker in brokers.values():
            if broker.running:
                listed = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=5).brokers
                if set(listed) != running:
                    return False
        return True

    wait_for(formed, 30, f"brokers {sorted(running)} registered and seen by each other", outputs)


@pytest.fixture
def cluster(zookeeper: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Cluster]]:
    """Factory: `cluster(3)` starts brokers 1..3; overrides apply to all of them."""
    made: list[Cluster] = []
    request.node._odradek_brokers = []

    def make(count: int, **overrides: object) -> Cluster:
        created = Cluster(zookeeper, tmp_path / f"cluster-{len(made)}", f"/odradek-test-{uuid.uuid4().hex[:8]}")
        made.append(created)
        for node_id in range(1, count + 1):
            created.add_broker(node_id, **overrides)
            request.node._odradek_brokers.append(created.brokers[node_id])
        created.wait_until_formed()
        return created

    yield make
    problems = [problem for created in made for problem in created.stop_all()]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
