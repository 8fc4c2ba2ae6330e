"""Three-broker clusters, odradek against Apache Kafka, on this machine in the same run.

    .venv/bin/python bench/cluster.py [--only kafka|odradek] [--count 300000] [--size 1024]

odradek: Apache ZooKeeper 3.9.5 (the jars `odradek zookeeper` uses) and three `odradek server`
processes. Kafka: the newest 4.x from Maven Central (bench/kafka_dist.py), three KRaft nodes in
combined mode with a static three-voter quorum (Kafka 4 has no ZooKeeper mode). Both with their
defaults, except that odradek's zookeeper.session.timeout.ms is set to 9000 to match KRaft's
broker.session.timeout.ms, so that failure detection is the same length on both sides.

Rows: produce throughput with librdkafka (bench/rdkafka_client.py) to a 6-partition topic with
replication factor 3 and min.insync.replicas=2, acks=1 and acks=all; and failover: an idempotent
acks=all producer sends to a 1-partition topic, its leader gets kill -9, and the row reports the
time until the first record sent after the kill is acknowledged (and until Metadata names a new
leader). The clusters run one after the other, never at the same time; clients and brokers share
the machine's cores. Prints a table; never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import confluent_kafka  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import brokers  # noqa: E402
import kafka_dist  # noqa: E402
from odradek.cli.zookeeper import ensure_installed, server_command, write_config  # noqa: E402

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SESSION_TIMEOUT_MS = 9000


def log(message: str) -> None:
    print(f"[cluster-bench] {message}", file=sys.stderr, flush=True)


def wait_port(port: int, process: subprocess.Popen, what: str, *outputs: Path, timeout_s: float = 90) -> None:
    """Until `port` accepts connections; a process that exits first fails with the end of its output."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None:
                text = "".join(out.read_text(errors="replace") for out in outputs if out.exists())
                errors = [line for line in text.splitlines() if "ERROR" in line or "Exception" in line]
                tail = "\n".join(errors[:10]) or text[-3000:]
                raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not open port {port}")
            time.sleep(0.05)


class Cluster:
    name = "?"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.ports = [brokers.free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen] = {}

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start_node(self, node_id: int) -> None:
        """Launch one node without waiting for it (a KRaft node opens its port only once a quorum exists)."""
        raise NotImplementedError

    def outputs(self, node_id: int) -> list[Path]:
        raise NotImplementedError

    def start(self) -> None:
        for node_id in (1, 2, 3):
            self.start_node(node_id)
        for node_id in (1, 2, 3):
            wait_port(self.ports[node_id - 1], self.processes[node_id], f"{self.name} node {node_id}", *self.outputs(node_id))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if len(AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=5).brokers) == 3:
                    return
            except Exception:  # noqa: BLE001 - not formed yet
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name}: the three brokers did not form a cluster")

    def kill(self, node_id: int) -> None:
        process = self.processes[node_id]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class OdradekCluster(Cluster):
    name = "odradek"

    def __init__(self, work: Path, src: Path | None = None) -> None:
        super().__init__(work)
        self.src = src or REPO  # the odradek to run: the work tree, or a `git archive` of a commit

    def start(self) -> None:
        lib = ensure_installed(REPO / ".cache" / "zookeeper", announce=log)
        self.zk_port = brokers.free_port()
        config = write_config(self.work / "zoo.cfg", {"dataDir": str(self.work / "zk"), "clientPort": str(self.zk_port)})
        with open(self.work / "zookeeper.log", "ab") as out:
            self.processes[0] = subprocess.Popen(server_command(config, lib, log_level="warn"), stdout=out,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.zk_port, self.processes[0], "ZooKeeper", self.work / "zookeeper.log")
        super().start()

    def start_node(self, node_id: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(self.src), HYPOTHESIS_STORAGE_DIRECTORY=str(brokers.HYPOTHESIS_DIR))
        command = [sys.executable, "-m", "odradek", "server",
                   "--override", f"broker.id={node_id}",
                   "--override", f"zookeeper.connect=127.0.0.1:{self.zk_port}",
                   "--override", f"zookeeper.session.timeout.ms={SESSION_TIMEOUT_MS}",
                   "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.ports[node_id - 1]}",
                   "--override", f"log.dirs={self.work / f'broker-{node_id}'}"]
        with open(self.work / f"broker-{node_id}.log", "ab") as out:
            self.processes[node_id] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                                       cwd=self.work, start_new_session=True)

    def outputs(self, node_id: int) -> list[Path]:
        return [self.work / f"broker-{node_id}.log"]

    def stop(self) -> None:
        zookeeper = self.processes.pop(0, None)
        super().stop()
        if zookeeper is not None and zookeeper.poll() is None:
            os.killpg(zookeeper.pid, signal.SIGTERM)
            zookeeper.wait(30)


class KafkaCluster(Cluster):
    name = "kafka"

    def __init__(self, work: Path, libs: Path) -> None:
        super().__init__(work)
        self.libs = libs
        self.controller_ports = [brokers.free_port() for _ in range(3)]
        self.cluster_id = brokers.KafkaBroker(work, libs, "").cluster_id

    def start(self) -> None:
        voters = ",".join(f"{n}@127.0.0.1:{self.controller_ports[n - 1]}" for n in (1, 2, 3))
        for node_id in (1, 2, 3):
            props = {
                "process.roles": "broker,controller", "node.id": str(node_id),
                "controller.quorum.voters": voters,
                "listeners": f"PLAINTEXT://127.0.0.1:{self.ports[node_id - 1]},CONTROLLER://127.0.0.1:{self.controller_ports[node_id - 1]}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.ports[node_id - 1]}",
                "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "log.dirs": str(self.work / f"kafka-{node_id}"), "group.initial.rebalance.delay.ms": "0",
            }
            config = self.work / f"server-{node_id}.properties"
            config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            (self.work / f"log4j2-{node_id}.properties").write_text(brokers.LOG4J2.format(log=self.work / f"kafka-{node_id}.log"))
            subprocess.run(["java", "-Xmx256M", "-cp", str(self.libs / "*"), "kafka.tools.StorageTool", "format",
                            "-t", self.cluster_id, "-c", str(config)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.work)
        super().start()

    def start_node(self, node_id: int) -> None:
        command = ["java", *brokers.KAFKA_JVM_OPTS, "-cp", str(self.libs / "*"),
                   f"-Dlog4j2.configurationFile={self.work / f'log4j2-{node_id}.properties'}",
                   "kafka.Kafka", str(self.work / f"server-{node_id}.properties")]
        with open(self.work / f"kafka-{node_id}.stdout", "ab") as out:
            self.processes[node_id] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.work,
                                                       start_new_session=True)

    def outputs(self, node_id: int) -> list[Path]:
        return [self.work / f"kafka-{node_id}.stdout", self.work / f"kafka-{node_id}.log"]


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 3, config={"min.insync.replicas": "2"})])[name].result(60)
    time.sleep(1)


def produce_rate(bootstrap: str, topic: str, count: int, size: int, acks: str) -> dict:
    out = subprocess.run([sys.executable, str(BENCH / "rdkafka_client.py"), "produce", bootstrap, topic, str(count),
                          str(size), acks], capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"produce failed: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def failover(cluster: Cluster) -> tuple[float, float]:
    """(s until the first post-kill record is acknowledged, s until Metadata names a new leader)."""
    create_topic(cluster.bootstrap, "failover", 1)
    leader = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics("failover", timeout=10).topics["failover"].partitions[0].leader
    acked_after: list[float] = []
    stop = threading.Event()
    killed_at = [0.0]

    def produce() -> None:
        producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True,
                                             "acks": "all", "linger.ms": 1, "message.timeout.ms": 120000})

        def delivered(error, message) -> None:
            sent_at = float(message.value().decode())
            if error is None and killed_at[0] and sent_at > killed_at[0] and not acked_after:
                acked_after.append(time.monotonic())

        while not stop.is_set():
            producer.produce("failover", value=f"{time.monotonic():.6f}".encode(), on_delivery=delivered)
            producer.poll(0.001)
        producer.flush(60)

    thread = threading.Thread(target=produce)
    thread.start()
    time.sleep(3)
    killed_at[0] = time.monotonic()
    cluster.kill(leader)
    others = ",".join(f"127.0.0.1:{port}" for n, port in enumerate(cluster.ports, start=1) if n != leader)
    new_leader_at = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (new_leader_at is None or not acked_after):
        if new_leader_at is None:
            try:
                partition = AdminClient({"bootstrap.servers": others, "log_level": 0}).list_topics("failover", timeout=2).topics["failover"].partitions[0]
                if partition.leader not in (leader, -1):
                    new_leader_at = time.monotonic()
            except Exception:  # noqa: BLE001
                pass
        time.sleep(0.05)
    stop.set()
    thread.join(120)
    first_ack = acked_after[0] - killed_at[0] if acked_after else float("nan")
    metadata = new_leader_at - killed_at[0] if new_leader_at else float("nan")
    return first_ack, metadata


def run(cluster: Cluster, count: int, size: int) -> dict:
    log(f"{cluster.name}: starting 3 brokers")
    cluster.start()
    try:
        create_topic(cluster.bootstrap, "throughput", 6)
        results = {}
        for acks in ("1", "all"):
            produce_rate(cluster.bootstrap, "throughput", count // 4, size, acks)  # warm-up, not timed
            results[f"acks={acks}"] = produce_rate(cluster.bootstrap, "throughput", count, size, acks)
            log(f"{cluster.name}: acks={acks}: {results[f'acks={acks}']}")
        results["failover"] = failover(cluster)
        log(f"{cluster.name}: failover {results['failover']}")
        return results
    finally:
        cluster.stop()


def compare(names: list[str], count: int, size: int, libs: Path | None = None, src: Path | None = None) -> dict:
    """Run each named cluster (kafka, odradek) in turn; {name: results}."""
    results = {}
    work = Path(tempfile.mkdtemp(prefix="odradek-cluster-bench-"))
    try:
        for name in names:
            (work / name).mkdir()
            if name == "kafka":
                cluster: Cluster = KafkaCluster(work / name, libs or kafka_dist.ensure_kafka(kafka_dist.newest_4x()))
            else:
                cluster = OdradekCluster(work / name, src)
            results[name] = run(cluster, count, size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def table(results: dict, size: int) -> str:
    lines = [f"| 3 brokers, RF=3, min.insync.replicas=2, {size} B records, librdkafka | " + " | ".join(results) + " |",
             "| --- |" + " ---: |" * len(results)]
    for acks in ("1", "all"):
        cells = [f"{r[f'acks={acks}']['records_per_s']:,.0f} rec/s ({r[f'acks={acks}']['mb_per_s']:.0f} MB/s)"
                 for r in results.values()]
        lines.append(f"| produce, 6 partitions, acks={acks} | " + " | ".join(cells) + " |")
    cells = [f"{r['failover'][0]:.1f} s (Metadata {r['failover'][1]:.1f} s)" for r in results.values()]
    lines.append("| kill -9 of the leader to the first acknowledged record after it | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("kafka", "odradek"))
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    names = [args.only] if args.only else ["kafka", "odradek"]
    print(table(compare(names, args.count, args.size), args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
