"""Many and greedy connections on one broker (issue 15): a thousand connections, most idle, are
all answered while real clients produce and consume beside them, an idle one costs a bounded
amount of memory, and a client that never reads its responses cannot grow the broker's memory."""

from __future__ import annotations

import resource
import time

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


def test_a_client_that_never_reads_its_responses_cannot_grow_broker_memory(broker):
    """It pipelines requests and reads nothing: once its unread responses pass the write high
    water mark (4 MiB), the broker stops reading from it, so memory stays bounded whatever it sends,
    and other clients are served meanwhile."""
    import socket

    from .wire import encode_request

    pid = broker.process.pid
    frame = encode_request(ApiVersionsRequest(client_software_name="greedy", client_software_version="1"), 1)
    batch = frame * 1000  # each ApiVersions answer is far larger than its request
    create_topic(broker.bootstrap_servers, "beside-greedy", partitions=1)
    before = rss_bytes(pid)
    greedy = socket.create_connection(("127.0.0.1", broker.port))
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    greedy.settimeout(3)
    sent = 0
    try:
        while sent < 200 * len(batch):  # 200,000 requests: over 100 MB of answers
            greedy.sendall(batch)
            sent += len(batch)
    except socket.timeout:
        pass  # the broker stopped reading: backpressure
    try:
        grown = rss_bytes(pid) - before
        print(f"sent {sent / 1e6:.1f} MB of requests before the broker stopped reading; broker RSS grew {grown / 2**20:.1f} MiB")
        assert sent < 200 * len(batch), "the broker kept reading requests whose answers nobody reads"
        assert grown < 48 * 2**20, grown
        produce("confluent", broker.bootstrap_servers, "beside-greedy", [Record(None, b"served", partition=0)], acks="all")
        assert [m.value for m in consume("confluent", broker.bootstrap_servers, "beside-greedy", [0], 1)] == [b"served"]
    finally:
        greedy.close()


def test_three_hundred_clients_produce_and_consume_at_once(broker):
    """150 aiokafka producers (acks=all, idempotent) and 150 aiokafka consumers on one broker at
    the same time: every producer is acknowledged and every consumer reads every record."""
    import asyncio

    import aiokafka

    producers, consumers, per_producer = 150, 150, 20
    create_topic(broker.bootstrap_servers, "crowd", partitions=6)
    expected = producers * per_producer

    async def produce_some(index: int) -> None:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all",
                                             enable_idempotence=True)
        await producer.start()
        try:
            for n in range(per_producer):
                await producer.send("crowd", b"producer %d record %d" % (index, n), partition=(index + n) % 6)
            await producer.flush()
        finally:
            await producer.stop()

    async def consume_all() -> int:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False,
                                             auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            consumer.assign([aiokafka.TopicPartition("crowd", p) for p in range(6)])
            await consumer.seek_to_beginning()
            seen = 0
            while seen < expected:
                batches = await consumer.getmany(timeout_ms=1000)
                seen += sum(len(records) for records in batches.values())
            return seen
        finally:
            await consumer.stop()

    async def crowd() -> list[int]:
        readers = [asyncio.create_task(consume_all()) for _ in range(consumers)]
        await asyncio.gather(*(produce_some(i) for i in range(producers)))
        return await asyncio.wait_for(asyncio.gather(*readers), 120)

    assert asyncio.run(crowd()) == [expected] * consumers
    received = consume("confluent", broker.bootstrap_servers, "crowd", range(6), expected)
    assert len({m.value for m in received}) == expected


def test_clients_trickling_requests_are_cut_off_and_others_keep_their_latency(start_broker):
    """A hundred slowloris clients each announce a 1,000-byte request and send it a byte every
    200 ms: with socket.request.receive.timeout.ms=1000 the broker closes every one of them within a
    few seconds (one log line each), while a well-behaved client's Metadata requests keep being
    answered quickly throughout."""
    import socket
    import statistics

    from kio.schema.metadata.v12.request import MetadataRequest


    broker = start_broker(**{"socket.request.receive.timeout.ms": 1000})
    slow = [socket.create_connection(("127.0.0.1", broker.port)) for _ in range(100)]
    for client in slow:
        client.sendall((1000).to_bytes(4, "big"))
    metadata = MetadataRequest(topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    latencies, closed = [], set()
    with WireClient(broker.bootstrap_servers) as good:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and len(closed) < len(slow):
            for index, client in enumerate(slow):
                if index not in closed:
                    try:
                        client.sendall(b"\0")
                    except OSError:
                        closed.add(index)
            started = time.monotonic()
            good.request(3, 12, metadata)
            latencies.append(time.monotonic() - started)
            time.sleep(0.2)
    for client in slow:
        client.close()
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
    print(f"{len(closed)} of {len(slow)} slowloris clients cut off; the well-behaved client's p99 was {p99 * 1000:.1f} ms")
    assert len(closed) == len(slow)
    assert p99 < 0.5
    assert broker.output().count("its request did not arrive in time") == len(slow)
