"""Compatibility suite harness: reference clients of other languages against a real broker.

The clients are fetched and built by `scripts/compat-fetch-tools.sh` into a git-ignored cache
(`.cache/compat`, or `$ODRADEK_COMPAT_CACHE`), reused when present. Each session fixture here
runs that script for its part once; when it fails (a registry refused, a toolchain is missing)
the tests of that client are skipped with the script's output as the reason, unless
`ODRADEK_COMPAT_REQUIRE=1`, which turns the skip into a failure (for a CI that must prove them).

Fixtures: `java_tools` (Kafka's CLI tools and the Java client), `franz_go` (the franz-go program),
`kafkajs` (node with KafkaJS on its module path) and `kcat`. Every tool runs as a subprocess with a
timeout; `run()` returns its output and fails the test with the command, exit status, stdout and
stderr when it exits non-zero. The broker comes from the root conftest (`broker`,
`start_broker`).

Readback helpers use confluent-kafka (librdkafka), which tests/integration already proves, so a
client that only produces here is checked by a second, independent client.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPAT_DIR = Path(__file__).resolve().parent
FETCH_SCRIPT = REPO_ROOT / "scripts" / "compat-fetch-tools.sh"
CACHE_DIR = Path(os.environ.get("ODRADEK_COMPAT_CACHE", REPO_ROOT / ".cache" / "compat"))
FETCH_TIMEOUT_S = 900.0
TOOL_TIMEOUT_S = 120.0
OUTPUT_CHARS = 6_000

GROUPS_MISSING = "consumer groups not implemented (issue 4): JoinGroup/SyncGroup/Heartbeat/OffsetCommit/OffsetFetch"


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_CHARS else f"[... {len(text) - OUTPUT_CHARS} characters cut ...]\n" + text[-OUTPUT_CHARS:]


def fetch(part: str) -> Path:
    """Run the fetch script for `part` and return the path it reports; skip (or fail) if it cannot."""
    try:
        result = subprocess.run(
            [str(FETCH_SCRIPT), part],
            env={**os.environ, "ODRADEK_COMPAT_CACHE": str(CACHE_DIR)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT_S,
        )
        output = result.stdout + result.stderr
        reported = [line for line in result.stdout.splitlines() if line.startswith(f"ok {part} ")]
        ok = result.returncode == 0 and bool(reported)
    except subprocess.TimeoutExpired as error:
        output, ok = f"timed out after {FETCH_TIMEOUT_S:.0f} s: {error}", False
    if not ok:
        reason = f"{part} reference client unavailable: {FETCH_SCRIPT.name} {part} failed:\n{_tail(output)}"
        if os.environ.get("ODRADEK_COMPAT_REQUIRE") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return Path(reported[-1].split(" ", 2)[2])


@dataclass(frozen=True)
class Completed:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    args: Sequence[str],
    *,
    input: str | None = None,
    timeout_s: float = TOOL_TIMEOUT_S,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> Completed:
    """Run a tool; with `check`, a non-zero exit fails the test showing everything it printed."""
    args = [str(a) for a in args]
    started = time.monotonic()
    try:
        result = subprocess.run(
            args,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as error:
        stdout = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else (error.stderr or "")
        pytest.fail(
            f"timed out after {timeout_s:.0f} s: {shlex.join(args)}\n--- stdout\n{_tail(stdout)}\n--- stderr\n{_tail(stderr)}",
            pytrace=False,
        )
    completed = Completed(args, result.returncode, result.stdout, result.stderr)
    if check and result.returncode != 0:
        pytest.fail(
            f"exit status {result.returncode} after {time.monotonic() - started:.1f} s: {shlex.join(args)}\n"
            f"--- stdout\n{_tail(result.stdout)}\n--- stderr\n{_tail(result.stderr)}",
            pytrace=False,
        )
    return completed


class JavaTools:
    """Kafka's Java client and CLI tools from the cached jars, on the machine's JDK."""

    # Short-lived tools: a quicker start matters more than peak speed.
    QUICK_START = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto"]

    def __init__(self, home: Path):
        self.lib = home / "lib"
        self.classes = home / "classes"
        self.classpath = f"{self.classes}{os.pathsep}{self.lib}/*"
        self.java = shutil.which("java") or "java"

    def command(self, main_class: str, *args: object, quick: bool = True, properties: dict[str, str] | None = None) -> list[str]:
        return [
            self.java,
            *(self.QUICK_START if quick else []),
            *(f"-D{key}={value}" for key, value in (properties or {}).items()),
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.logFile=System.err",
            "-cp",
            self.classpath,
            main_class,
            *(str(a) for a in args),
        ]

    def run(
        self, main_class: str, *args: object, quick: bool = True, properties: dict[str, str] | None = None,
        **kwargs: object,
    ) -> Completed:
        return run(self.command(main_class, *args, quick=quick, properties=properties), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def java_tools() -> JavaTools:
    return JavaTools(fetch("java"))


@pytest.fixture(scope="session")
def franz_go() -> Path:
    return fetch("go")


@dataclass(frozen=True)
class NodeRuntime:
    node: str
    node_modules: Path

    def run(self, script: Path, *args: object, **kwargs: object) -> Completed:
        env = {"NODE_PATH": str(self.node_modules), "KAFKAJS_NO_PARTITIONER_WARNING": "1"}
        return run([self.node, str(script), *(str(a) for a in args)], env=env, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def kafkajs() -> NodeRuntime:
    node_modules = fetch("node")
    return NodeRuntime(shutil.which("node") or "node", node_modules)


@pytest.fixture(scope="session")
def kcat() -> str:
    return str(fetch("kcat"))


@pytest.fixture
def group_broker(start_broker):
    """A fresh broker whose groups form at once: Kafka's 3 s initial rebalance delay only slows tests."""
    return start_broker(**{"group.initial.rebalance.delay.ms": 0})


# --- confluent-kafka as the independent second client ---


def create_topic(bootstrap: str, topic: str, partitions: int = 1, timeout_s: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    futures[topic].result(timeout=timeout_s)


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int


def produce(bootstrap: str, topic: str, messages: Sequence[Message], timeout_s: float = 30.0) -> list[tuple[int, int]]:
    """Produce with confluent-kafka (idempotent, acks=all); `offset` of each message is ignored.

    Returns (partition, offset) per message, in order.
    """
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    results: list[tuple[int, int] | str | None] = [None] * len(messages)

    def delivered(index: int):
        def callback(error, msg):
            results[index] = str(error) if error else (msg.partition(), msg.offset())

        return callback

    for index, message in enumerate(messages):
        producer.produce(
            topic,
            value=message.value,
            key=message.key,
            partition=message.partition,
            headers=list(message.headers) or None,
            timestamp=message.timestamp_ms,
            on_delivery=delivered(index),
        )
        producer.poll(0)
    remaining = producer.flush(timeout_s)
    assert remaining == 0, f"confluent-kafka: {remaining} messages not delivered in {timeout_s} s"
    errors = [(i, r) for i, r in enumerate(results) if not isinstance(r, tuple)]
    assert not errors, f"confluent-kafka delivery errors: {errors[:5]}"
    return results  # type: ignore[return-value]


def consume(bootstrap: str, topic: str, partitions: Sequence[int], count: int, timeout_s: float = 30.0) -> list[Message]:
    """Read `count` messages from the start of `partitions` with confluent-kafka (assign, no group)."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "odradek-compat-readback",  # required by librdkafka; unused with assign()
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
    messages: list[Message] = []
    errors: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=min(10_000, count - len(messages)), timeout=0.5):
                if msg.error():
                    errors.append(str(msg.error()))
                    continue
                messages.append(
                    Message(
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        tuple(msg.headers() or ()),
                        msg.timestamp()[1],
                    )
                )
    finally:
        consumer.close()
    assert len(messages) == count, f"confluent-kafka read {len(messages)} of {count} messages; errors: {errors[:5]}"
    return messages


def by_partition(messages: Sequence[Message]) -> dict[int, list[Message]]:
    grouped: dict[int, list[Message]] = {}
    for message in messages:
        grouped.setdefault(message.partition, []).append(message)
    return grouped
