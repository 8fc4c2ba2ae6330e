"""Each listener advertises itself: a client that bootstraps on a listener is told the brokers'
endpoints on that listener (Metadata, FindCoordinator), as Kafka does with several listeners."""

from __future__ import annotations

import time

import confluent_kafka
from confluent_kafka.admin import AdminClient

from conftest import BrokerProcess, free_port

from .clients import Record, consume, create_topic, produce


def test_metadata_on_each_listener_names_that_listeners_endpoint(tmp_path):
    internal = free_port()
    broker = BrokerProcess(tmp_path, {"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT"})
    broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},INTERNAL://127.0.0.1:{internal}"
    broker.start()
    try:
        for bootstrap, port in ((broker.bootstrap_servers, broker.port), (f"127.0.0.1:{internal}", internal)):
            metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
            assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", port)], bootstrap

        create_topic(f"127.0.0.1:{internal}", "via-internal", partitions=1)
        produce("confluent", f"127.0.0.1:{internal}", "via-internal", [Record(None, b"x", partition=0)])
        assert [m.value for m in consume("confluent", broker.bootstrap_servers, "via-internal", [0], 1)] == [b"x"]
    finally:
        assert broker.stop() == 0, broker.output()


def test_idle_connections_are_closed_after_connections_max_idle_ms_and_busy_ones_stay(start_broker):
    """Kafka closes a connection that has sent nothing for connections.max.idle.ms (10 minutes by
    default); 1,000 idle sockets no longer stay open forever. A client that keeps asking stays."""
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    from .wire import WireClient

    broker = start_broker(**{"connections.max.idle.ms": "1000"})
    ask = ApiVersionsRequest(client_software_name="idle-test", client_software_version="1")
    idle = [WireClient(broker.bootstrap_servers) for _ in range(20)]
    with WireClient(broker.bootstrap_servers) as busy:
        idle[0].request(18, 3, ask)
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            assert busy.request(18, 3, ask).error_code == 0
            time.sleep(0.3)
        assert all(client.is_closed(timeout_s=2) for client in idle), "idle connections closed"
        assert busy.request(18, 3, ask).error_code == 0, "a connection in use stays open"
    for client in idle:
        client.close()
    # clients reconnect as they need to: a producer idle past the limit still delivers
    create_topic(broker.bootstrap_servers, "after-idle", partitions=1)
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers, "log_level": 3})
    producer.produce("after-idle", b"before")
    assert producer.flush(10) == 0
    time.sleep(2.5)
    producer.produce("after-idle", b"after")
    assert producer.flush(10) == 0
    assert [m.value for m in consume("confluent", broker.bootstrap_servers, "after-idle", [0], 2)] == [b"before", b"after"]


def test_connection_limits_per_address_broker_wide_and_by_rate(start_broker):
    """Kafka's connection quotas: one connection too many from an address is closed at once (with
    Kafka's log line); beyond max.connections a new one waits, unread, until another closes; and
    connections are accepted no faster than max.connection.creation.rate."""
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    from .wire import WireClient

    versions = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    broker = start_broker(**{"max.connections.per.ip": "3", "max.connections": "2"})
    first, second = WireClient(broker.bootstrap_servers), WireClient(broker.bootstrap_servers)
    for client in (first, second):
        assert client.request(18, 3, versions).error_code == 0
    waiting = WireClient(broker.bootstrap_servers, timeout_s=10)
    waiting.send_raw(_api_versions_frame())
    assert not waiting.is_closed(1.0)  # held: nothing read, nothing answered, not closed
    refused = WireClient(broker.bootstrap_servers)
    assert refused.is_closed(5)  # the fourth from 127.0.0.1
    assert "Rejected connection from 127.0.0.1, address already has the configured maximum of 3 connections." in broker.output()
    first.sock.close()
    waiting.sock.settimeout(10)
    assert len(waiting.recv_frame()) > 8  # served once a slot freed

    paced = start_broker(**{"max.connection.creation.rate": "5"})
    started = time.monotonic()
    clients = [WireClient(paced.bootstrap_servers) for _ in range(15)]
    for client in clients:
        assert client.request(18, 3, versions).error_code == 0
    assert time.monotonic() - started >= 1.8  # 15 at 5 per second: at least two windows of waiting


def _api_versions_frame() -> bytes:
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    from .wire import encode_request

    return encode_request(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 1, version=3)


def _socket_memory(port: int) -> tuple[dict[str, int], str]:
    """The skmem fields of the broker's side of the established connection on `port`, as `ss -tm`
    shows them, and ss's line."""
    import subprocess

    shown = subprocess.run(["ss", "-tmnH", "state", "established", "sport", "=", f":{port}"],
                           capture_output=True, text=True, check=True).stdout
    memory = shown[shown.index("skmem:(") + 7 : shown.index(")", shown.index("skmem:("))].split(",")
    return {item.rstrip("0123456789"): int(item.lstrip("abcdefghijklmnopqrstuvwxyz_")) for item in memory}, shown


def test_socket_buffer_sizes_are_set_as_configured(start_broker):
    """socket.send.buffer.bytes and socket.receive.buffer.bytes size the buffers of a client's
    connection, as `ss -tm` shows them (Linux doubles the value asked for its own bookkeeping)."""
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    from .wire import WireClient

    broker = start_broker(**{"socket.send.buffer.bytes": "65536", "socket.receive.buffer.bytes": "131072"})
    port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
    with WireClient(broker.bootstrap_servers) as client:
        ask = ApiVersionsRequest(client_software_name="buffers", client_software_version="1")
        assert client.request(18, 3, ask).error_code == 0
        fields, shown = _socket_memory(port)
    assert fields["tb"] == 2 * 65536, shown
    assert fields["rb"] == 2 * 131072, shown


def test_by_default_a_consumers_send_buffer_is_kafkas_100_kib(start_broker):
    """With the defaults a consumer's connection has Kafka's 102400-byte send buffer (Linux shows
    twice that), and keeps it while it reads 8 MiB: the kernel does not grow a fixed size."""
    broker = start_broker()
    port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
    create_topic(broker.bootstrap_servers, "wide", partitions=1)
    produce("confluent", broker.bootstrap_servers, "wide", [Record(None, bytes(1024), partition=0)] * 8192)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "wide"})
    try:
        consumer.assign([confluent_kafka.TopicPartition("wide", 0, 0)])
        read = 0
        deadline = time.monotonic() + 30
        while read < 8192 and time.monotonic() < deadline:
            read += sum(1 for m in consumer.consume(1000, 1) if m.error() is None)
        assert read == 8192
        fields, shown = _socket_memory(port)
    finally:
        consumer.close()
    assert fields["tb"] == 2 * 102400, shown
