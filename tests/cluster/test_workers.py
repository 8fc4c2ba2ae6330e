"""`odradek server --workers 2`: two brokers of one cluster from one config, as an operator of a
bigger host runs them (docs/scaling.md). A real ZooKeeper, real worker processes, real clients."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO_ROOT
from .conftest import CLUSTER_DEFAULTS
from .load import wait_for


def _free_ports(count: int) -> int:
    """A port p with p + 1 .. p + count - 1 free too (worker i listens on p + i)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            others = [socket.socket() for _ in range(count - 1)]
            try:
                for offset, other in enumerate(others, 1):
                    other.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            finally:
                for other in others:
                    other.close()
        return port
    raise RuntimeError(f"no {count} consecutive free ports")


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET, without following redirects."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _workers_of(supervisor: int) -> dict[int, int]:
    """broker id -> pid of the supervisor's running workers."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != supervisor or stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        ids = [int(arg.partition(b"=")[2]) for arg in cmdline if arg.startswith(b"broker.id=")]
        if ids:
            found[ids[-1]] = int(entry.name)  # the last --override wins: the worker's own id
    return found


def _read_values(bootstrap: str, topic: str, partitions: int, count: int) -> set[int]:
    """The integer values of `topic`, read from the start of every partition until `count` are in
    (or 60 s passed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values = set()
    deadline = time.monotonic() + 60
    while len(values) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.add(int(message.value()))
    consumer.close()
    return values


def _registrations(connect: str) -> dict[int, dict]:
    client = KazooClient(hosts=connect, timeout=10)
    client.start(timeout=10)
    try:
        if not client.exists("/brokers/ids"):
            return {}
        return {int(i): json.loads(client.get(f"/brokers/ids/{i}")[0]) for i in client.get_children("/brokers/ids")}
    finally:
        client.stop()
        client.close()


def test_two_workers_serve_as_two_brokers_and_a_killed_one_comes_back(zookeeper, tmp_path):
    port = _free_ports(2)
    http_port = _free_ports(3)  # the host's /metrics and /ready, then each worker's own
    connect = f"{zookeeper.connect}/odradek-test-{uuid.uuid4().hex[:8]}"
    settings = {**CLUSTER_DEFAULTS, "zookeeper.connect": connect, "broker.id": 1,
                "listeners": f"PLAINTEXT://127.0.0.1:{port}", "log.dirs": tmp_path / "data",
                "offsets.topic.replication.factor": 2, "metrics.listener": f"http://127.0.0.1:{http_port}"}
    command = [sys.executable, "-m", "odradek", "server", "--workers", "2"]
    for key, value in settings.items():
        command += ["--override", f"{key}={value}"]
    output_path = tmp_path / "supervisor.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with open(output_path, "wb") as output:
        supervisor = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def log() -> str:
        return output_path.read_text(errors="replace")[-8000:]

    try:
        # Both register: ids 1 and 2, ports p and p + 1, this host as their rack.
        wait_for(lambda: set(_registrations(connect)) == {1, 2}, 60, "both workers registered", log)
        registered = _registrations(connect)
        assert {i: (r["port"], r["rack"]) for i, r in registered.items()} == {
            1: (port, socket.gethostname()), 2: (port + 1, socket.gethostname())}
        assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["broker-1", "broker-2"]

        bootstrap = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait_for(lambda: set(admin.list_topics(timeout=5).brokers) == {1, 2}, 30, "Metadata lists both", log)
        admin.create_topics([NewTopic("spread", 4, 2)])["spread"].result(30)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(1000):
            producer.produce("spread", str(i).encode(), key=str(i).encode())
        assert producer.flush(30) == 0
        leaders = {p.leader for p in admin.list_topics("spread", timeout=5).topics["spread"].partitions.values()}
        assert leaders == {1, 2}  # the controller spreads leaders over the workers

        # One address for the host: ready when both are, every worker's metrics labelled with its id.
        wait_for(lambda: _get(http_port, "/ready")[0] == 200, 30, "the host ready", log)
        assert set(json.loads(_get(http_port, "/ready")[2])["workers"]) == {"1", "2"}
        status, headers, body = _get(http_port, "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        samples = [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]
        assert {s.labels["broker_id"]: s.value for s in samples if s.name == "odradek_worker_up"} == {"1": 1.0, "2": 1.0}
        sizes = {(s.labels["broker_id"], s.labels["partition"]) for s in samples if s.name == "kafka_log_log_size"
                 and s.labels.get("topic") == "spread"}
        assert sizes == {(b, str(p)) for b in ("1", "2") for p in range(4)}  # 4 partitions, 2 replicas each
        status, headers, _ = _get(http_port, "/ui")
        assert (status, headers["Location"]) == (307, f"http://127.0.0.1:{http_port + 1}/ui")  # the console of worker 0

        # kill -9 a worker: the supervisor starts it again and it catches up with the other.
        before = _workers_of(supervisor.pid)
        assert set(before) == {1, 2} and before[1] != before[2]
        os.kill(before[2], signal.SIGKILL)

        def back_in_sync() -> bool:
            now = _workers_of(supervisor.pid)
            if now.get(2) in (None, before[2]):
                return False
            partitions = admin.list_topics("spread", timeout=5).topics["spread"].partitions.values()
            return all(sorted(p.isrs) == [1, 2] for p in partitions)

        wait_for(back_in_sync, 90, "worker 2 started again and back in every ISR", log)
        assert "broker 2 exited with signal SIGKILL; starting it again" in log()
        wait_for(lambda: _get(http_port, "/ready")[0] == 200, 30, "the host ready again", log)

        assert _read_values(bootstrap, "spread", 4, 1000) == set(range(1000))
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
        try:
            code = supervisor.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(supervisor.pid, signal.SIGKILL)
            raise AssertionError(f"the supervisor did not stop within 120 s\n{log()}")
    text = output_path.read_text(errors="replace")
    assert code == 0, text[-8000:]
    # One at a time, the last first, each with its own prefixed output.
    assert text.index("stopping broker 2") < text.index("stopping broker 1"), text[-8000:]
    assert "[broker 1] " in text and "[broker 2] " in text
    assert "Traceback" not in text
    assert _workers_of(supervisor.pid) == {}


def test_workers_shut_down_cleanly_when_their_supervisor_is_killed(zookeeper, tmp_path):
    port = _free_ports(2)
    connect = f"{zookeeper.connect}/odradek-test-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "odradek", "server", "--workers", "2"]
    for key, value in {**CLUSTER_DEFAULTS, "zookeeper.connect": connect, "listeners": f"PLAINTEXT://127.0.0.1:{port}",
                       "log.dirs": tmp_path / "data"}.items():
        command += ["--override", f"{key}={value}"]
    output_path = tmp_path / "supervisor.log"
    with open(output_path, "wb") as output:
        supervisor = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, start_new_session=True)
    workers: dict[int, int] = {}
    try:
        wait_for(lambda: set(_registrations(connect)) == {0, 1}, 60, "both workers registered",
                 lambda: output_path.read_text(errors="replace")[-8000:])
        workers = _workers_of(supervisor.pid)
        assert set(workers) == {0, 1}  # no broker.id set: the single node's 0, then 1
        supervisor.kill()
        supervisor.wait()

        def gone(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"

        wait_for(lambda: all(gone(pid) for pid in workers.values()), 60, "both workers stopped")
        # A clean shutdown: each wrote its clean-shutdown marker (no recovery at the next start).
        for broker_id in (0, 1):
            assert (tmp_path / "data" / f"broker-{broker_id}" / ".kafka_cleanshutdown").exists()
        assert _registrations(connect) == {}
    finally:
        for pid in workers.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _start_host(tmp_path: Path, connect: str, rack: str, first_id: int) -> tuple[subprocess.Popen, int, Path]:
    """A supervisor of two workers, standing for one host (its rack): (process, first port, log)."""
    port = _free_ports(2)
    command = [sys.executable, "-m", "odradek", "server", "--workers", "2"]
    settings = {**CLUSTER_DEFAULTS, "zookeeper.connect": connect, "broker.id": first_id, "broker.rack": rack,
                "listeners": f"PLAINTEXT://127.0.0.1:{port}", "log.dirs": tmp_path / rack,
                "offsets.topic.replication.factor": 2}
    for key, value in settings.items():
        command += ["--override", f"{key}={value}"]
    output_path = tmp_path / f"{rack}.log"
    with open(output_path, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, start_new_session=True)
    return process, port, output_path


def test_losing_a_whole_host_of_workers_leaves_every_partition_a_replica_on_the_other(zookeeper, tmp_path):
    """Two "hosts" of two workers each, their hosts as racks (docs/scaling.md): the rack-aware
    placement puts the two replicas of every partition on different hosts, so when one host goes
    at once (both workers and their supervisor killed with SIGKILL), every partition gets a leader
    on the other and every acknowledged record is still there."""
    connect = f"{zookeeper.connect}/odradek-test-{uuid.uuid4().hex[:8]}"
    hosts = {rack: _start_host(tmp_path, connect, rack, first_id) for rack, first_id in (("host-a", 1), ("host-b", 3))}

    def log() -> str:
        return "\n".join(f"--- {rack}\n{path.read_text(errors='replace')[-6000:]}" for rack, (_, _, path) in hosts.items())

    try:
        wait_for(lambda: set(_registrations(connect)) == {1, 2, 3, 4}, 90, "all four workers registered", log)
        assert {i: r["rack"] for i, r in _registrations(connect).items()} == {
            1: "host-a", 2: "host-a", 3: "host-b", 4: "host-b"}
        bootstrap = ",".join(f"127.0.0.1:{port}" for _, port, _ in hosts.values())
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait_for(lambda: set(admin.list_topics(timeout=5).brokers) == {1, 2, 3, 4}, 30, "Metadata lists all", log)
        admin.create_topics([NewTopic("racked", 8, 2)])["racked"].result(30)

        def partitions():
            return admin.list_topics("racked", timeout=5).topics["racked"].partitions.values()

        wait_for(lambda: all(p.leader > 0 and len(p.isrs) == 2 for p in partitions()), 30, "leaders and full ISRs", log)
        assert all({r <= 2 for r in p.replicas} == {True, False} for p in partitions())  # one replica on each host
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(2000):
            producer.produce("racked", str(i).encode(), key=str(i).encode())
        assert producer.flush(30) == 0

        # host-a goes at once: its supervisor stopped first (so it restarts nothing), its workers
        # and then itself killed.
        supervisor_a = hosts["host-a"][0]
        workers_a = _workers_of(supervisor_a.pid)
        assert set(workers_a) == {1, 2}
        os.kill(supervisor_a.pid, signal.SIGSTOP)
        for pid in workers_a.values():
            os.kill(pid, signal.SIGKILL)
        os.kill(supervisor_a.pid, signal.SIGKILL)
        supervisor_a.wait(30)

        surviving = AdminClient({"bootstrap.servers": f"127.0.0.1:{hosts['host-b'][1]}"})

        def led_by_host_b() -> bool:
            found = surviving.list_topics("racked", timeout=5).topics["racked"].partitions.values()
            return len(found) == 8 and all(p.leader in (3, 4) for p in found)

        wait_for(led_by_host_b, 90, "every partition led by a worker of host-b", log)
        assert _read_values(f"127.0.0.1:{hosts['host-b'][1]}", "racked", 8, 2000) == set(range(2000))
    finally:
        for process, _, _ in hosts.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _, _ in hosts.values():
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    assert hosts["host-b"][0].returncode == 0, log()
