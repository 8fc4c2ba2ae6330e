"""How long one Fetch takes, odradek against Apache Kafka: time to the response's first and last byte.

A consumer that waits for each answer before it asks again (the Java consumer reading a few
partitions, whose every Fetch carries all of them) reads at a rate set by this time, not by the
broker's throughput. Each broker gets a topic of 1 KiB records in 256 KiB batches, spread over its
partitions (as the bench's consume rows), then Fetch v12 requests of 1 MiB per partition, one at a
time on one connection, each partition's from where the previous answer's whole batches ended, as a
consumer reads on (back to the start near the end), first for a warm-up pass that is not counted.
Reports the median and 90th percentile of both times and the broker's CPU per Fetch.

    .venv/bin/python bench/fetch_latency.py [--fetches 3000] [--partitions 1,6] [--receive-buffer BYTES]
                                            [--only kafka|odradek] [--commit REV | --src DIR]

Prints a table; never part of `make test`.
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import struct
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brokers  # noqa: E402
import kafka_dist  # noqa: E402
import run  # noqa: E402
from kio.schema.fetch.v12 import request as fetch_v12  # noqa: E402
from kio.schema.fetch.v12 import response as fetch_v12_response  # noqa: E402
from kio.schema.request_header.v2.header import RequestHeader  # noqa: E402
from kio.serial import entity_reader, entity_writer  # noqa: E402
from kio.static.primitive import i8, i16, i32, i64  # noqa: E402
from odradek.protocol.records import BATCH_HEADER_SIZE, read_batch_header  # noqa: E402

RECORD_BYTES = 1024
BATCH_BYTES = 262_144
PARTITION_MAX_BYTES = 1 << 20
RECORDS_PER_PARTITION = 50_000
RECORDS_PER_FETCH = PARTITION_MAX_BYTES // RECORD_BYTES  # about: a partition's share of one answer
TOPIC = "fetch-latency"


def fetch_frame(correlation_id: int, offsets: list[int]) -> bytes:
    request = fetch_v12.FetchRequest(
        replica_id=i32(-1), max_wait=timedelta(milliseconds=500), min_bytes=i32(1), max_bytes=i32(52_428_800),
        isolation_level=i8(0), session_id=i32(0), session_epoch=i32(-1),
        topics=(fetch_v12.FetchTopic(topic=TOPIC, partitions=tuple(
            fetch_v12.FetchPartition(partition=i32(p), current_leader_epoch=i32(-1), fetch_offset=i64(offset),
                                     last_fetched_epoch=i32(-1), log_start_offset=i64(-1),
                                     partition_max_bytes=i32(PARTITION_MAX_BYTES))
            for p, offset in enumerate(offsets))),),
        forgotten_topics_data=(), rack_id="")
    buffer = io.BytesIO()
    entity_writer(RequestHeader)(buffer, RequestHeader(request_api_key=i16(1), request_api_version=i16(12),
                                                       correlation_id=i32(correlation_id), client_id="fetch-latency"))
    entity_writer(fetch_v12.FetchRequest)(buffer, request)
    body = buffer.getvalue()
    return struct.pack(">i", len(body)) + body


def receive_into(sock: socket.socket, buffer: bytearray) -> None:
    view = memoryview(buffer)
    while view:
        count = sock.recv_into(view)
        if not count:
            raise ConnectionError("the broker closed the connection")
        view = view[count:]


def next_offsets(body: bytes, offsets: list[int]) -> list[int]:
    """Each partition's offset after the last whole batch of a Fetch v12 answer (its body after the
    response header), back to 0 once the next read would reach the end of what was written."""
    answer, _size = entity_reader(fetch_v12_response.FetchResponse)(body, 5)  # after the correlation id, no tags
    offsets = list(offsets)
    for topic in answer.responses:
        for partition in topic.partitions:
            records, position = partition.records or b"", 0
            while position + BATCH_HEADER_SIZE <= len(records):
                header = read_batch_header(records, position)
                if position + header.size > len(records):  # the answer's last batch may be cut short
                    break
                offsets[partition.partition_index] = header.next_offset
                position += header.size
            if offsets[partition.partition_index] + 2 * RECORDS_PER_FETCH > RECORDS_PER_PARTITION:
                offsets[partition.partition_index] = 0
    return offsets


def measure(broker: brokers.Broker, partitions: int, fetches: int, receive_buffer: int = -1) -> dict:
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if receive_buffer > 0:  # before connecting, so the window is agreed with it (as Java's client does)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.connect((host, int(port)))
        offsets = [0] * partitions
        firsts, lasts = [], []
        cpu_before = broker.cpu_seconds()
        for n in range(fetches):
            frame = fetch_frame(n, offsets)
            start = time.perf_counter()
            sock.sendall(frame)
            head = bytearray(4)
            receive_into(sock, head)
            first = time.perf_counter()
            body = bytearray(struct.unpack(">i", head)[0])
            receive_into(sock, body)
            firsts.append(first - start)
            lasts.append(time.perf_counter() - start)
            offsets = next_offsets(bytes(body), offsets)  # kio reads only read-only buffers
        cpu = broker.cpu_seconds() - cpu_before
    firsts.sort()
    lasts.sort()
    return {"first_p50": firsts[len(firsts) // 2], "first_p90": firsts[len(firsts) * 9 // 10],
            "last_p50": lasts[len(lasts) // 2], "last_p90": lasts[len(lasts) * 9 // 10], "cpu": cpu / fetches}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fetches", type=int, default=3000, help="timed fetches per row (and as many untimed first)")
    ap.add_argument("--partitions", default="1,6", help="partitions per Fetch, one row each (at most 6)")
    ap.add_argument("--receive-buffer", type=int, default=-1, metavar="BYTES",
                    help="the client socket's SO_RCVBUF (the Java consumer's receive.buffer.bytes is 65536); "
                         "default: the kernel's autotuning, as librdkafka")
    ap.add_argument("--only", choices=["kafka", "odradek"])
    ap.add_argument("--commit", metavar="REV", help="run odradek as committed at REV, not the work tree")
    ap.add_argument("--src", type=Path, help="run odradek from this directory (one holding odradek/)")
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.partitions.split(",")]
    workdir = brokers.make_workdir()
    src = brokers.archive_odradek(args.commit, workdir / "src") if args.commit else args.src
    rows: dict[str, dict[int, dict]] = {}
    try:
        for name in [args.only] if args.only else ["kafka", "odradek"]:
            if name == "kafka":
                version = kafka_dist.newest_4x()
                broker: brokers.Broker = brokers.KafkaBroker(workdir / name, kafka_dist.ensure_kafka(version), version)
            else:
                broker = brokers.OdradekBroker(workdir / name, src=src)
            (workdir / name).mkdir()
            broker.start()
            try:
                run.create_topic(broker.bootstrap, TOPIC, max(counts))
                total = RECORDS_PER_PARTITION * max(counts)
                run.produced(run.rdkafka(["produce", broker.bootstrap, TOPIC, total, RECORD_BYTES, "1",
                                          "--full-batches", BATCH_BYTES, "--spread", 1], timeout=600), total)
                rows[name] = {}
                for partitions in counts:
                    measure(broker, partitions, args.fetches, args.receive_buffer)  # warm-up: the JIT, the page cache
                    rows[name][partitions] = measure(broker, partitions, args.fetches, args.receive_buffer)
            finally:
                broker.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    buffer = f"SO_RCVBUF {args.receive_buffer}" if args.receive_buffer > 0 else "the kernel's receive buffer"
    print(f"Fetch v12, 1 MiB per partition of {RECORD_BYTES} B records, one at a time, {args.fetches} each, {buffer}:\n")
    print("| broker | partitions | first byte p50 / p90 | last byte p50 / p90 | broker CPU per Fetch |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, by_count in rows.items():
        for partitions, r in by_count.items():
            print(f"| {name} | {partitions} | {r['first_p50'] * 1e6:,.0f} / {r['first_p90'] * 1e6:,.0f} µs "
                  f"| {r['last_p50'] * 1e3:.2f} / {r['last_p90'] * 1e3:.2f} ms | {r['cpu'] * 1e6:,.0f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
