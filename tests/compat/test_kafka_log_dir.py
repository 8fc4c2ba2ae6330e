"""A log dir written by Apache Kafka 4.4 itself: odradek refuses it and leaves every byte in place.

What a user reported: pointed at the data dir of a one-node Kafka 4.4 (KRaft, a 3-partition topic
with 3,000 records and a group's committed offsets), odradek deleted every partition directory in
it. Here a real Kafka 4.4 (from the cached jars, KRaft combined mode, storage formatted with
`kafka-storage format --standalone`) writes that dir through confluent-kafka and is stopped
cleanly. `odradek server` started on it, with the default node.id and with Kafka's own node.id 1,
must exit 1 with one ERROR line on stderr naming the dir and the reason (another cluster's data,
or, for node.id 0, another node's) and no traceback; the dir's files and directories must be
exactly as Kafka left them (no `.lock` left behind either). Then Kafka started again on the
same dir still serves all 3,000 records and the group's committed offsets.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import confluent_kafka
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import REPO_ROOT, free_port
from .conftest import Message, consume, create_topic, produce

STORAGE_TOOL = "kafka.tools.StorageTool"
KAFKA_MAIN = "kafka.Kafka"
CLUSTER_ID = "8lbaw5M8SraId_Md8o0_ew"  # what `kafka-storage random-uuid` prints: 16 random bytes, base64url
NODE_ID = 1
TOPIC = "kaninitopic"
GROUP = "compat-group"
PARTITIONS = 3
RECORDS = 3_000
KAFKA_READY_TIMEOUT_S = 60.0
KAFKA_STOP_TIMEOUT_S = 30.0
ODRADEK_TIMEOUT_S = 60.0
OUTPUT_CHARS = 6_000


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text if len(text) <= OUTPUT_CHARS else f"[... {len(text) - OUTPUT_CHARS} characters cut ...]\n" + text[-OUTPUT_CHARS:]


class KafkaNode:
    """One Apache Kafka 4.4 node in KRaft combined mode (broker and controller) with fixed ports and
    data dir, so that it can be stopped and started again on the same dir."""

    def __init__(self, java_tools, work_dir: Path):
        self.java_tools = java_tools
        self.work_dir = work_dir
        self.data = work_dir / "kafka-data"
        self.port = free_port()
        self.controller_port = free_port()
        self.config = work_dir / "server.properties"
        self.output = work_dir / "kafka-output.log"
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={NODE_ID}",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                ]
            )
            + "\n"
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def format(self) -> None:
        """`kafka-storage.sh format -t <id> -c server.properties --standalone`: this node is the
        only voter of the metadata quorum."""
        formatted = self.java_tools.run(STORAGE_TOOL, "format", "-t", CLUSTER_ID, "-c", self.config, "--standalone")
        assert f"Formatting dynamic metadata voter directory {self.data}" in formatted.stdout, formatted.stdout

    @contextmanager
    def running(self) -> Iterator["KafkaNode"]:
        """`kafka-server-start.sh server.properties` until the block ends; always stopped (SIGTERM,
        then SIGKILL), so no JVM outlives the test."""
        with open(self.output, "ab") as output:
            output.write(b"--- kafka.Kafka start\n")
            output.flush()
            process = subprocess.Popen(
                self.java_tools.command(KAFKA_MAIN, self.config),
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_ready(process)
            yield self
        finally:
            self._stop(process)

    def _wait_until_ready(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + KAFKA_READY_TIMEOUT_S
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        while True:
            if process.poll() is not None:
                raise AssertionError(f"Kafka exited with {process.returncode} while starting:\n{_tail(self.output)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"Kafka not ready within {KAFKA_READY_TIMEOUT_S:.0f} s:\n{_tail(self.output)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                if admin.list_topics(timeout=2).brokers:
                    return
            except (OSError, confluent_kafka.KafkaException):
                pass
            time.sleep(0.1)

    def _stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(KAFKA_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"Kafka did not stop within {KAFKA_STOP_TIMEOUT_S:.0f} s of SIGTERM:\n{_tail(self.output)}")


def _sent() -> list[Message]:
    now_ms = int(time.time() * 1000)
    return [
        Message(i % PARTITIONS, -1, f"key-{i}".encode(), f"value-{i}".encode(), (), now_ms + i) for i in range(RECORDS)
    ]


def _consume_in_group_and_commit(bootstrap: str) -> dict[int, int]:
    """Subscribe as GROUP, read every record, commit synchronously; the committed offsets."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    read, errors = 0, []
    deadline = time.monotonic() + 30
    try:
        consumer.subscribe([TOPIC])
        while read < RECORDS and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1_000, timeout=0.5):
                if msg.error():
                    errors.append(str(msg.error()))
                else:
                    read += 1
        assert read == RECORDS, f"group {GROUP} read {read} of {RECORDS}; errors: {errors[:5]}"
        committed = consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert all(tp.error is None for tp in committed), committed
    return {tp.partition: tp.offset for tp in committed if tp.topic == TOPIC}


def _committed_offsets(bootstrap: str) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(GROUP, [TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request], request_timeout=30)[GROUP].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.error is None}


def _snapshot(data: Path) -> tuple[dict[str, str], set[str]]:
    """(every file, relative path -> sha256 of its content; every directory)."""
    files, directories = {}, set()
    for path in sorted(data.rglob("*")):
        relative = str(path.relative_to(data))
        if path.is_dir():
            directories.add(relative)
        else:
            files[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files, directories


def _changes(before: tuple[dict[str, str], set[str]], after: tuple[dict[str, str], set[str]]) -> list[str]:
    (files, directories), (now_files, now_directories) = before, after
    return (
        [f"deleted {name}" for name in sorted(files.keys() - now_files.keys())]
        + [f"created {name}" for name in sorted(now_files.keys() - files.keys())]
        + [f"changed {name}" for name in sorted(files.keys() & now_files.keys()) if files[name] != now_files[name]]
        + [f"deleted dir {name}" for name in sorted(directories - now_directories)]
        + [f"created dir {name}" for name in sorted(now_directories - directories)]
    )


def _odradek_server(data: Path, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """`odradek server` on Kafka's dir, as a user starts it."""
    command = [
        sys.executable, "-m", "odradek", "server",
        "--override", f"log.dirs={data}",
        "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
    ]
    for override in overrides:
        command += ["--override", override]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
        "HYPOTHESIS_STORAGE_DIRECTORY": os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY", str(REPO_ROOT / ".hypothesis")),
    }
    return subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
        env=env, cwd=cwd, timeout=ODRADEK_TIMEOUT_S,
    )


def _refusal(result: subprocess.CompletedProcess) -> str:
    """The one line a refused `odradek server` prints; fails on anything else."""
    shown = f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 1, shown
    assert "Traceback" not in result.stderr, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert " ERROR " in lines[0] and "cannot start" in lines[0], shown
    return lines[0]


def test_odradek_refuses_a_kafka_4_4_log_dir_and_kafka_still_reads_it(java_tools, tmp_path):
    kafka = KafkaNode(java_tools, tmp_path)
    kafka.format()
    sent = _sent()

    # 1. Kafka 4.4 writes the dir: a 3-partition topic, 3,000 records, a group's committed offsets.
    with kafka.running():
        create_topic(kafka.bootstrap_servers, TOPIC, partitions=PARTITIONS)
        produce(kafka.bootstrap_servers, TOPIC, sent)
        committed = _consume_in_group_and_commit(kafka.bootstrap_servers)
    per_partition = {p: RECORDS // PARTITIONS for p in range(PARTITIONS)}
    assert committed == per_partition
    data = kafka.data
    assert (data / ".kafka_cleanshutdown").is_file(), f"Kafka did not shut down cleanly:\n{_tail(kafka.output)}"
    files, directories = _snapshot(data)
    assert {f"{TOPIC}-{p}" for p in range(PARTITIONS)} | {"__cluster_metadata-0", "__consumer_offsets-0"} <= directories
    assert f"cluster.id={CLUSTER_ID}" in (data / "meta.properties").read_text()

    # 2. odradek on it, with its default node.id (0) and with Kafka's node.id: one line, exit 1.
    refused = _refusal(_odradek_server(data, cwd=tmp_path))
    assert str(data) in refused, refused
    assert "cluster" in refused or "node.id" in refused, refused
    assert _changes((files, directories), _snapshot(data)) == [], "odradek (default node.id) changed Kafka's log dir"

    refused = _refusal(_odradek_server(data, f"node.id={NODE_ID}", cwd=tmp_path))
    assert str(data) in refused and "cluster" in refused, refused
    assert _changes((files, directories), _snapshot(data)) == [], f"odradek (node.id={NODE_ID}) changed Kafka's log dir"

    # 3. Kafka again on the same dir: every record and the group's offsets are still there.
    with kafka.running():
        read = consume(kafka.bootstrap_servers, TOPIC, range(PARTITIONS), RECORDS)
        assert committed == _committed_offsets(kafka.bootstrap_servers)
    assert sorted((m.partition, m.key, m.value) for m in read) == sorted((m.partition, m.key, m.value) for m in sent)
    assert {p: max(m.offset for m in read if m.partition == p) + 1 for p in range(PARTITIONS)} == per_partition
