"""Group consumers in their own processes, so that `kill -9` of one member is real.

`GroupConsumer(client, bootstrap, group, topics, ...)` runs this file as a script
(`sys.executable group_clients.py '<json spec>'`): one confluent-kafka, kafka-python or aiokafka
consumer that subscribes, prints one JSON line per event to stdout (flushed at once, so a
SIGKILL loses nothing already reported) and, on SIGTERM, closes the consumer (LeaveGroup) and
exits. The parent reads those lines on a thread and answers questions about them: the current
assignment, what was revoked, which offsets were consumed and committed.

Events, each with `t` (wall-clock seconds):
  started; assigned/revoked/lost {partitions, assignment}; message {topic, partition, offset};
  committed {topic, partition, offset (the next offset to read)}; commit_failed {error};
  error {error, fatal}; closed.
`assignment` is the member's whole assignment after the event: rebalance callbacks of eager
protocols carry the whole set, those of cooperative ones an increment, and both are folded here.

With `commit="each"` every message is committed synchronously after it is reported, so a member
that dies leaves at most the messages after its last `committed` event uncommitted.

The child half imports nothing from the tests, so that it runs as a plain script.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

CLIENTS = ["confluent", "kafka-python", "aiokafka"]
SESSION_TIMEOUT_MS = 6000  # the broker's group.min.session.timeout.ms
HEARTBEAT_INTERVAL_MS = 1000
STOP_TIMEOUT_S = 20.0
POLL_S = 0.05

Partition = tuple[str, int]


# --- parent side ---------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, describe: Callable[[], str] = lambda: "") -> float:
    """Poll `condition` until true; returns the seconds it took, fails naming `what` otherwise."""
    start = time.monotonic()
    deadline = start + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout_s} s: {what}\n{describe()}")
        time.sleep(POLL_S)
    return time.monotonic() - start


class GroupConsumer:
    """One consumer process in a group. Not thread-safe except for reading events."""

    def __init__(
        self,
        client: str,
        bootstrap: str,
        group: str,
        topics: Iterable[str],
        *,
        name: str = "",
        commit: str = "each",
        config: dict[str, object] | None = None,
        session_timeout_ms: int | None = SESSION_TIMEOUT_MS,
    ) -> None:
        if client not in CLIENTS:
            raise ValueError(f"unknown client {client!r}; expected one of {CLIENTS}")
        self.client = client
        self.name = name or f"{client}-consumer"
        spec = {
            "client": client,
            "bootstrap": bootstrap,
            "group": group,
            "topics": list(topics),
            "commit": commit,
            "config": dict(config or {}),
            "session_timeout_ms": session_timeout_ms,
        }
        self.events: list[dict] = []
        self.stderr_lines: list[str] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), json.dumps(spec)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._readers = [
            threading.Thread(target=self._read_events, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_events(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.decode(errors="replace")}
            with self._lock:
                self.events.append(event)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            with self._lock:
                self.stderr_lines.append(line.decode(errors="replace").rstrip())

    # -- questions ---------------------------------------------------------------------------

    def snapshot(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self.events if kind is None or e["event"] == kind]

    @property
    def assignment(self) -> set[Partition]:
        """The member's current assignment, as last reported."""
        changes = [e for e in self.snapshot() if "assignment" in e]
        return {tuple(p) for p in changes[-1]["assignment"]} if changes else set()  # type: ignore[misc]

    def partitions_in(self, kind: str) -> list[Partition]:
        """Every partition named by `kind` events (assigned, revoked, lost), in order."""
        return [tuple(p) for e in self.snapshot(kind) for p in e["partitions"]]  # type: ignore[misc]

    def consumed(self) -> list[tuple[str, int, int]]:
        """(topic, partition, offset) of every message read, in order."""
        return [(e["topic"], e["partition"], e["offset"]) for e in self.snapshot("message")]

    def first_read_at(self) -> dict[tuple[str, int, int], float]:
        """When this member first read each message (wall-clock seconds)."""
        first: dict[tuple[str, int, int], float] = {}
        for e in self.snapshot("message"):
            first.setdefault((e["topic"], e["partition"], e["offset"]), e["t"])
        return first

    def committed(self) -> dict[Partition, int]:
        """The last offset this member reported committed per partition (next offset to read)."""
        return {(e["topic"], e["partition"]): e["offset"] for e in self.snapshot("committed")}

    def fatal_errors(self) -> list[str]:
        return [e["error"] for e in self.snapshot("error") if e.get("fatal")]

    def describe(self) -> str:
        with self._lock:
            interesting = [e for e in self.events if e["event"] != "message" and e["event"] != "committed"]
            messages = sum(1 for e in self.events if e["event"] == "message")
            stderr = self.stderr_lines[-30:]
        status = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return (
            f"--- {self.name} ({self.client}, {status}, {messages} messages)\n"
            + "\n".join(json.dumps(e) for e in interesting[-30:])
            + ("\nstderr:\n" + "\n".join(stderr) if stderr else "")
        )

    def wait_for(self, condition: Callable[["GroupConsumer"], bool], timeout_s: float, what: str) -> float:
        def check() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited while waiting for: {what}\n{self.describe()}")
            if self.fatal_errors():
                raise AssertionError(f"{self.name} reported a fatal error while waiting for: {what}\n{self.describe()}")
            return condition(self)

        return wait_for(check, timeout_s, f"{self.name}: {what}", self.describe)

    def wait_started(self, timeout_s: float = 20.0) -> None:
        self.wait_for(lambda c: bool(c.snapshot("started")), timeout_s, "consumer created")

    # -- lifecycle ---------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL: no LeaveGroup, no commit, no close."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._join_readers()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM: the consumer closes (leaves the group) and exits; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"{self.name} did not exit {timeout_s} s after SIGTERM\n{self.describe()}")
        self._join_readers()
        return self.process.returncode

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(5)


def describe_all(consumers: Iterable[GroupConsumer]) -> str:
    return "\n".join(c.describe() for c in consumers)


# --- child side ----------------------------------------------------------------------------------


def _emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


class _Member:
    """The child's bookkeeping of its own assignment (folded from rebalance callbacks)."""

    def __init__(self) -> None:
        self.assignment: set[Partition] = set()
        self.stopping = False

    def changed(self, kind: str, partitions: Iterable[Partition]) -> None:
        partitions = sorted(set(partitions))
        if kind == "assigned":
            self.assignment |= set(partitions)
        else:
            self.assignment -= set(partitions)
        _emit(kind, partitions=partitions, assignment=sorted(self.assignment))


def _run_confluent(spec: dict, member: _Member) -> None:
    import confluent_kafka

    config: dict[str, object] = {
        "bootstrap.servers": spec["bootstrap"],
        "group.id": spec["group"],
        "auto.offset.reset": "earliest",
        "enable.auto.commit": spec["commit"] == "auto",
        "error_cb": lambda error: _emit("error", error=str(error), fatal=error.fatal()),
    }
    if spec["session_timeout_ms"] is not None:
        config["session.timeout.ms"] = spec["session_timeout_ms"]
        config["heartbeat.interval.ms"] = HEARTBEAT_INTERVAL_MS
    config.update(spec["config"])
    consumer = confluent_kafka.Consumer(config)

    def parts(partitions):
        return [(p.topic, p.partition) for p in partitions]

    consumer.subscribe(
        spec["topics"],
        on_assign=lambda _c, ps: member.changed("assigned", parts(ps)),
        on_revoke=lambda _c, ps: member.changed("revoked", parts(ps)),
        on_lost=lambda _c, ps: member.changed("lost", parts(ps)),
    )
    _emit("started")
    while not member.stopping:
        message = consumer.poll(0.1)
        if message is None:
            continue
        if message.error() is not None:
            _emit("error", error=str(message.error()), fatal=message.error().fatal())
            continue
        _emit("message", topic=message.topic(), partition=message.partition(), offset=message.offset())
        if spec["commit"] == "each":
            try:
                consumer.commit(message=message, asynchronous=False)
            except confluent_kafka.KafkaException as error:
                _emit("commit_failed", error=str(error))
            else:
                _emit("committed", topic=message.topic(), partition=message.partition(), offset=message.offset() + 1)
    consumer.close()


def _run_kafka_python(spec: dict, member: _Member) -> None:
    import kafka
    import kafka.errors

    class Listener(kafka.ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            member.changed("revoked", [(p.topic, p.partition) for p in revoked])

        def on_partitions_assigned(self, assigned):
            member.changed("assigned", [(p.topic, p.partition) for p in assigned])

    config: dict[str, object] = {
        "bootstrap_servers": spec["bootstrap"],
        "group_id": spec["group"],
        "auto_offset_reset": "earliest",
        "enable_auto_commit": spec["commit"] == "auto",
    }
    if spec["session_timeout_ms"] is not None:
        config["session_timeout_ms"] = spec["session_timeout_ms"]
        config["heartbeat_interval_ms"] = HEARTBEAT_INTERVAL_MS
    config.update(spec["config"])
    consumer = kafka.KafkaConsumer(**config)
    consumer.subscribe(spec["topics"], listener=Listener())
    _emit("started")
    while not member.stopping:
        for tp, batch in consumer.poll(timeout_ms=100).items():
            for record in batch:
                _emit("message", topic=tp.topic, partition=tp.partition, offset=record.offset)
                if spec["commit"] != "each":
                    continue
                try:
                    consumer.commit({tp: kafka.OffsetAndMetadata(record.offset + 1, "", -1)})
                except kafka.errors.KafkaError as error:
                    _emit("commit_failed", error=repr(error))
                else:
                    _emit("committed", topic=tp.topic, partition=tp.partition, offset=record.offset + 1)
        finish_orphaned_kafka_python_join(consumer)
    consumer.close()


def finish_orphaned_kafka_python_join(consumer) -> None:
    """Work around a kafka-python 3.0.12 bug (tests/compat/FINDINGS.md, "kafka-python 3.0.12: a
    leader's rejoin is dropped"). poll() gives up waiting for a JoinGroup/SyncGroup after its
    timeout and later polls collect the result only while need_rejoin() is true. A leader that
    rejoins because partition metadata changed makes need_rejoin() false itself (its assignor
    records the new metadata), so the join is never collected: the member stays REBALANCING with
    heartbeats disabled and no assignment, and the broker expires it after the session timeout.
    Asking for a rejoin makes the next poll() await (or redo) that join, as the Java client does.
    Only that stuck state is touched: a member that is waiting for the broker still waits."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or not coordinator.rebalance_in_progress() or coordinator.need_rejoin():
        return
    print("kafka-python join result would be dropped (FINDINGS.md): requesting rejoin", file=sys.stderr, flush=True)
    coordinator.request_rejoin()


async def _run_aiokafka(spec: dict, member: _Member) -> None:
    import aiokafka
    import aiokafka.errors

    class Listener(aiokafka.ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            member.changed("revoked", [(p.topic, p.partition) for p in revoked])

        def on_partitions_assigned(self, assigned):
            member.changed("assigned", [(p.topic, p.partition) for p in assigned])

    config: dict[str, object] = {
        "bootstrap_servers": spec["bootstrap"],
        "group_id": spec["group"],
        "auto_offset_reset": "earliest",
        "enable_auto_commit": spec["commit"] == "auto",
    }
    if spec["session_timeout_ms"] is not None:
        config["session_timeout_ms"] = spec["session_timeout_ms"]
        config["heartbeat_interval_ms"] = HEARTBEAT_INTERVAL_MS
    config.update(spec["config"])
    consumer = aiokafka.AIOKafkaConsumer(**config)
    await consumer.start()
    consumer.subscribe(spec["topics"], listener=Listener())
    _emit("started")
    while not member.stopping:
        for tp, batch in (await consumer.getmany(timeout_ms=100)).items():
            for record in batch:
                _emit("message", topic=tp.topic, partition=tp.partition, offset=record.offset)
                if spec["commit"] != "each":
                    continue
                try:
                    await consumer.commit({tp: record.offset + 1})
                except aiokafka.errors.KafkaError as error:
                    _emit("commit_failed", error=repr(error))
                else:
                    _emit("committed", topic=tp.topic, partition=tp.partition, offset=record.offset + 1)
    await consumer.stop()


def main(argv: list[str]) -> None:
    spec = json.loads(argv[1])
    member = _Member()

    def stop(_signum, _frame) -> None:
        member.stopping = True

    signal.signal(signal.SIGTERM, stop)
    if spec["client"] == "confluent":
        _run_confluent(spec, member)
    elif spec["client"] == "kafka-python":
        _run_kafka_python(spec, member)
    else:
        import asyncio

        asyncio.run(_run_aiokafka(spec, member))
    _emit("closed")


if __name__ == "__main__":
    main(sys.argv)
