"""One broker per log dir, and a broker never deletes data it does not know.

What a user tried: a second broker on another port with the same `log.dirs` took the directory
and wrote over five acknowledged records; `make run` twice ran recovery on the live broker's files
and wrote the clean-shutdown marker under it. Now the second broker is refused with one line naming
the directory and the holder's pid, having read and written nothing; the lock is the operating
system's, so it is gone after a `kill -9`. A dir of another cluster (or node) is refused the same
way, and partition dirs whose topic the metadata does not know are set aside as `-stray`, never
deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from odradek.broker import Broker
from odradek.log.dir_lock import LogDirError

from conftest import REPO_ROOT, BrokerProcess, free_port
from .clients import Record, consume, create_topic, produce, topic_partitions

START_TIMEOUT_S = 30


def records(start: int, count: int) -> list[Record]:
    return [Record(key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0, timestamp_ms=1_700_000_000_000 + i) for i in range(start, start + count)]


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` (but the lock file, which holds the holder's pid) -> sha256."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(directory.rglob("*"))
        if path.name != ".lock"
    }


def run_server(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """`odradek server` as a user runs it, expected to refuse and exit."""
    command = [sys.executable, "-m", "odradek", "server"]
    for override in overrides:
        command += ["--override", override]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HYPOTHESIS_STORAGE_DIRECTORY": str(REPO_ROOT / ".hypothesis")}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=START_TIMEOUT_S)


def assert_refused_with_one_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], result.stderr
    return errors[0]


def test_second_broker_on_a_used_log_dir_is_refused_and_loses_nothing(broker, tmp_path):
    topic = "owned"
    create_topic(broker.bootstrap_servers, topic, partitions=1)
    first = records(0, 5)
    produce("confluent", broker.bootstrap_servers, topic, first, acks="all")
    before = snapshot(broker.log_dir)

    result = run_server(
        f"log.dirs={broker.log_dir}", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}", cwd=tmp_path
    )

    assert_refused_with_one_line(result, str(broker.log_dir), f"pid {broker.process.pid}")
    assert snapshot(broker.log_dir) == before, "the refused broker changed the data dir"
    more = records(5, 5)
    deliveries = produce("confluent", broker.bootstrap_servers, topic, more, acks="all")
    assert [d.offset for d in deliveries] == [5, 6, 7, 8, 9]
    consumed = consume("confluent", broker.bootstrap_servers, topic, [0], 10)
    assert [m.as_record() for m in consumed] == first + more


def test_make_run_twice_touches_nothing_of_the_running_broker(broker, tmp_path):
    """Same port and same dir, as `make run` in a second terminal."""
    topic = "twice"
    create_topic(broker.bootstrap_servers, topic, partitions=1)
    sent = records(0, 20)
    produce("confluent", broker.bootstrap_servers, topic, sent, acks="all")
    before = snapshot(broker.log_dir)

    result = run_server(f"log.dirs={broker.log_dir}", f"listeners=PLAINTEXT://{broker.bootstrap_servers}", cwd=tmp_path)

    assert_refused_with_one_line(result, "cannot start", str(broker.log_dir))
    assert snapshot(broker.log_dir) == before
    assert not (broker.log_dir / ".kafka_cleanshutdown").exists()
    # Later the first broker crashes: recovery must still run, and every record be readable.
    broker.kill()
    broker.start()
    assert "recovery ran after an unclean shutdown" in broker.output()
    consumed = consume("confluent", broker.bootstrap_servers, topic, [0], len(sent))
    assert [m.as_record() for m in consumed] == sent


def test_lock_is_released_by_kill_9(broker):
    create_topic(broker.bootstrap_servers, "after-crash", partitions=1)
    sent = records(0, 3)
    produce("confluent", broker.bootstrap_servers, "after-crash", sent, acks="all")
    assert (broker.log_dir / ".lock").exists()

    broker.kill()
    broker.start()  # the .lock file is still there; the OS lock went with the process

    consumed = consume("confluent", broker.bootstrap_servers, "after-crash", [0], len(sent))
    assert [m.as_record() for m in consumed] == sent


def test_taken_port_fails_before_the_data_is_touched(tmp_path):
    data = tmp_path / "data"
    holder = BrokerProcess(tmp_path / "holder")
    holder.start()
    try:
        result = run_server(f"log.dirs={data}", f"listeners=PLAINTEXT://{holder.bootstrap_servers}", cwd=tmp_path)
    finally:
        assert holder.stop() == 0
    line = assert_refused_with_one_line(result, f"cannot listen on {holder.bootstrap_servers}", "Address already in use")
    assert "Traceback" not in line
    assert list(data.iterdir()) == [], "a broker that could not listen wrote into its log dir"


def test_in_process_broker_refuses_a_dir_another_broker_holds(tmp_path):
    data = tmp_path / "data"
    with Broker(data) as first:
        with pytest.raises(LogDirError, match=rf"log dir {data} is locked by pid {os.getpid()}"):
            Broker(data).start()
        produce("confluent", first.bootstrap_servers, "inproc", records(0, 3), acks="all")
    with Broker(data) as second:  # released on stop
        consumed = consume("confluent", second.bootstrap_servers, "inproc", [0], 3)
        assert [m.value for m in consumed] == [b"v0", b"v1", b"v2"]


def test_in_process_broker_refuses_a_dir_a_server_process_holds(broker):
    with pytest.raises(LogDirError, match=f"pid {broker.process.pid}"):
        Broker(broker.log_dir).start()


def test_dump_log_reads_a_locked_dir(broker):
    create_topic(broker.bootstrap_servers, "dumped", partitions=1)
    produce("confluent", broker.bootstrap_servers, "dumped", records(0, 4), acks="all")
    segment = broker.log_dir / "dumped-0" / f"{0:020d}.log"

    result = subprocess.run(
        [sys.executable, "-m", "odradek", "dump-log", "--print-data-log", str(segment)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert "payload: v3" in result.stdout


def test_another_clusters_dir_is_refused_and_left_as_it_was(tmp_path):
    """What Apache Kafka leaves behind: meta.properties of its cluster, partition dirs, no odradek metadata."""
    data = tmp_path / "kafka-data"
    for partition_dir in ("kaninitopic-0", "kaninitopic-1", "__consumer_offsets-7", "__cluster_metadata-0"):
        (data / partition_dir).mkdir(parents=True)
        (data / partition_dir / f"{0:020d}.log").write_bytes(b"\x00" * 100)
    (data / "meta.properties").write_text("version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\nnode.id=0\ndirectory.id=abc\n")
    before = snapshot(data)

    result = run_server(f"log.dirs={data}", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}", cwd=tmp_path)

    assert_refused_with_one_line(result, str(data), "MkU3OEVBNTcwNTJENDM2Qk")
    assert snapshot(data) == before
    assert not (data / ".lock").exists(), "the refused broker left its lock file behind"


def test_mismatched_cluster_id_is_refused(start_broker, tmp_path):
    broker = start_broker()
    create_topic(broker.bootstrap_servers, "mine", partitions=1)
    assert broker.stop() == 0
    meta = broker.log_dir / "meta.properties"
    meta.write_text(meta.read_text().replace("cluster.id=", "cluster.id=X"))
    before = snapshot(broker.log_dir)

    result = run_server(f"log.dirs={broker.log_dir}", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}", cwd=tmp_path)

    assert_refused_with_one_line(result, "does not match", str(meta))
    assert snapshot(broker.log_dir) == before


def test_other_node_id_is_one_line_and_exit_1(start_broker, tmp_path):
    broker = start_broker()
    assert broker.stop() == 0

    result = run_server(
        f"log.dirs={broker.log_dir}", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}", "node.id=7", cwd=tmp_path
    )

    assert_refused_with_one_line(result, "belongs to node.id 0", "node.id 7")


def test_partitions_of_unknown_topics_are_kept_as_stray(start_broker):
    broker = start_broker()
    create_topic(broker.bootstrap_servers, "known", partitions=1)
    produce("confluent", broker.bootstrap_servers, "known", records(0, 3), acks="all")
    assert broker.stop() == 0
    # Partition dirs the metadata does not know: a topic it never had, a partition beyond the count.
    for stray in ("ghost-0", "known-5"):
        (broker.log_dir / stray).mkdir()
        (broker.log_dir / stray / f"{0:020d}.log").write_bytes(b"")
    metadata = json.loads((broker.log_dir / "odradek-metadata.json").read_text())
    assert [t["name"] for t in metadata["topics"]] == ["known"]

    broker.start()

    strays = sorted(p.name for p in broker.log_dir.iterdir() if p.name.endswith("-stray"))
    assert [name.split(".")[0] for name in strays] == ["ghost-0", "known-5"]
    assert all((broker.log_dir / name / f"{0:020d}.log").exists() for name in strays)
    assert "Kept 2 partition logs whose topics are not in the metadata" in broker.output()
    assert topic_partitions(broker.bootstrap_servers, "ghost") is None
    consumed = consume("confluent", broker.bootstrap_servers, "known", [0], 3)
    assert [m.value for m in consumed] == [b"v0", b"v1", b"v2"]

    assert broker.stop() == 0
    broker.start()  # kept across restarts, never loaded nor deleted
    assert sorted(p.name for p in broker.log_dir.iterdir() if p.name.endswith("-stray")) == strays
    assert "holds 2 stray partition dirs" in broker.output()
