"""A thousand client connections on one broker (issue 15): most idle, some producing and
consuming. Every one is answered, the busy ones lose nothing, and an idle connection costs the
broker a bounded amount of memory."""

from __future__ import annotations

import resource

from kio.schema.api_versions.v3.request import ApiVersionsRequest

from .clients import Record, consume, create_topic, produce
from .wire import WireClient

CONNECTIONS = 1000
IDLE_CONNECTION_BYTES_BOUND = 64 * 1024


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_a_thousand_connections_are_served_and_idle_ones_cost_little(broker):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * CONNECTIONS)), hard))
    ask = ApiVersionsRequest(client_software_name="many", client_software_version="1")
    pid = broker.process.pid
    create_topic(broker.bootstrap_servers, "many-connections", partitions=3)
    warm = [WireClient(broker.bootstrap_servers) for _ in range(10)]
    for client in warm:
        client.request(18, 3, ask)
    before = rss_bytes(pid)

    clients = [WireClient(broker.bootstrap_servers) for _ in range(CONNECTIONS)]
    try:
        for client in clients:
            assert client.request(18, 3, ask).error_code == 0
        per_connection = (rss_bytes(pid) - before) / CONNECTIONS
        print(f"broker RSS per idle connection: {per_connection / 1024:.1f} KiB")
        assert per_connection < IDLE_CONNECTION_BYTES_BOUND, per_connection

        # real clients beside them: every record produced is consumed
        records = [Record(key=b"k%d" % i, value=b"v%d" % i, partition=i % 3) for i in range(10_000)]
        for client_name in ("confluent", "kafka-python", "aiokafka"):
            produce(client_name, broker.bootstrap_servers, "many-connections", records[:1000], acks="all")
        produce("confluent", broker.bootstrap_servers, "many-connections", records, acks="all")
        assert len(consume("confluent", broker.bootstrap_servers, "many-connections", [0, 1, 2], 13_000)) == 13_000

        for client in clients:  # none was dropped meanwhile
            assert client.request(18, 3, ask).error_code == 0
    finally:
        for client in clients + warm:
            client.close()
