"""librdkafka (confluent-kafka) workloads, run as a separate process; prints one JSON line.

    python bench/rdkafka_client.py produce  BOOTSTRAP TOPIC COUNT SIZE ACKS
    python bench/rdkafka_client.py consume  BOOTSTRAP TOPIC COUNT
    python bench/rdkafka_client.py latency  BOOTSTRAP TOPIC RATE SECONDS SIZE

The produce loop is a plain `for` loop around `Producer.produce()` with no per-message delivery
callback (a Python callback per record would halve the rate); success is checked afterwards from
the partitions' end offsets. At 100 B records this loop, not the broker, can be the limit.

RDKAFKA_CLIENT_CONFIG, a JSON object in the environment, is added to every producer and consumer
configuration: the security settings of an SSL or SASL_SSL listener (`security.protocol`,
`ssl.ca.location`, `sasl.mechanism`, ...), so that the command lines stay the same for every listener.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import struct
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

CLIENT_CONFIG = json.loads(os.environ.get("RDKAFKA_CLIENT_CONFIG") or "{}")

PRODUCER_CONFIG = {
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 2_000_000,
    "compression.type": "none",
    "message.timeout.ms": 120_000,
    **CLIENT_CONFIG,
}

# librdkafka's consumer defaults (queued.min.messages=100000, fetch.queue.backoff.ms=1000) make a
# fast consumer pause a second whenever its local queue is full: measure the broker, not that.
CONSUMER_CONFIG = {
    "group.id": "odradek-bench",
    "enable.auto.commit": False,
    "queued.min.messages": 1_000_000,
    "fetch.queue.backoff.ms": 1,
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 1_048_576,
    **CLIENT_CONFIG,
}


class Errors:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, err: KafkaError) -> None:
        # transport hiccups are retried by librdkafka; keep the first few for the report
        if len(self.seen) < 5:
            self.seen.append(str(err))


def end_offsets(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    c = Consumer({"bootstrap.servers": bootstrap, **CONSUMER_CONFIG})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts]
    finally:
        c.close()


def settled_end(bootstrap: str, topic: str, timeout_s: float = 30.0) -> int:
    """The topic's summed high watermarks once they stop moving: with replicas and acks=1 the high
    watermark trails the acknowledged records until the followers have fetched them."""
    last = sum(hi for _, hi in end_offsets(bootstrap, topic))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = sum(hi for _, hi in end_offsets(bootstrap, topic))
        if now == last:
            return now
        last = now
    return last


def produce(bootstrap: str, topic: str, count: int, size: int, acks: str) -> dict:
    errors = Errors()
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "error_cb": errors, **PRODUCER_CONFIG})
    before = settled_end(bootstrap, topic)
    p.list_topics(topic, timeout=10)  # metadata and connection before the clock starts
    value = os.urandom(size)
    produce_ = p.produce
    poll = p.poll
    t0 = time.perf_counter()
    for _ in range(count):
        try:
            produce_(topic, value)
        except BufferError:
            poll(0.005)
            produce_(topic, value)
    left = p.flush(120)
    elapsed = time.perf_counter() - t0
    acked = settled_end(bootstrap, topic) - before
    return {
        "records": count,
        "acked": acked,
        "seconds": elapsed,
        "records_per_s": acked / elapsed,
        "mb_per_s": acked * size / elapsed / 1e6,
        "unflushed": left,
        "errors": errors.seen,
    }


def consume(bootstrap: str, topic: str, count: int) -> dict:
    errors = Errors()
    c = Consumer({"bootstrap.servers": bootstrap, "error_cb": errors, **CONSUMER_CONFIG})
    md = c.list_topics(topic, timeout=10)
    parts = sorted(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    got = 0
    nbytes = 0
    t0 = None
    deadline = time.monotonic() + 120
    while got < count and time.monotonic() < deadline:
        # never ask for more than are left: consume(n) waits for n records or the timeout
        msgs = c.consume(num_messages=min(10_000, count - got), timeout=1.0)
        if msgs and t0 is None:
            t0 = time.perf_counter()  # from the first batch: connection set-up is not the broker's throughput
        for m in msgs:
            if m.error() is None:
                got += 1
                nbytes += len(m.value())
            elif m.error().code() != KafkaError._PARTITION_EOF:
                errors(m.error())
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    c.close()
    return {
        "records": got,
        "seconds": elapsed,
        "records_per_s": got / elapsed if elapsed else 0.0,
        "mb_per_s": nbytes / elapsed / 1e6 if elapsed else 0.0,
        "errors": errors.seen,
    }


def _latency_consumer(bootstrap: str, topic: str, ready, stop, out) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, **CONSUMER_CONFIG, "fetch.wait.max.ms": 100})
    md = c.list_topics(topic, timeout=10)
    parts = sorted(md.topics[topic].partitions)
    # start at the current end of the log: only records sent from now on count
    tps = []
    for p in parts:
        _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        tps.append(TopicPartition(topic, p, hi))
    c.assign(tps)
    c.consume(num_messages=1, timeout=0.5)  # connection up before the producer starts
    ready.set()
    lat_us: list[int] = []
    ts_lat_ms: list[int] = []
    # poll() hands over each record as soon as it is there (consume(n) would wait for n records)
    poll = c.poll
    while not stop.is_set():
        m = poll(0.05)
        if m is None or m.error() is not None:
            continue
        now = time.time()
        sent = struct.unpack_from(">d", m.value())[0]
        lat_us.append(int((now - sent) * 1e6))
        ts_lat_ms.append(int(now * 1000) - m.timestamp()[1])
    c.close()
    out.put((lat_us, ts_lat_ms))


def latency(bootstrap: str, topic: str, rate: int, seconds: float, size: int) -> dict:
    """Send `rate` records/s for `seconds`; a consumer process reads them as they arrive.

    Each record carries its send time (time.time(), float64) in its first 8 bytes, because the
    record timestamp has millisecond resolution; the record-timestamp figure is reported too.
    The first two seconds are warm-up and not counted. The producer uses linger.ms=5 (librdkafka's
    default): with linger.ms=0 every record is its own request, and 10,000 requests/s saturated
    Kafka's broker on 2 cores (p50 over 100 ms), a figure about the client setting, not the broker.
    """
    ctx = multiprocessing.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    warmup = 2.0
    proc = ctx.Process(target=_latency_consumer, args=(bootstrap, topic, ready, stop, out))
    proc.start()
    if not ready.wait(30):
        proc.kill()
        raise RuntimeError("latency consumer did not start")
    errors = Errors()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5, "error_cb": errors, **CLIENT_CONFIG})
    p.list_topics(topic, timeout=10)
    pad = os.urandom(size - 8)
    tick = 0.001
    per_tick = rate * tick
    t0 = time.time()
    sent = 0
    end = t0 + warmup + seconds
    while True:
        now = time.time()
        if now >= end:
            break
        due = int((now - t0) * rate)
        while sent < due:
            p.produce(topic, struct.pack(">d", time.time()) + pad)
            sent += 1
        p.poll(0)
        time.sleep(max(0.0, t0 + (sent + per_tick) / rate - time.time()))
    p.flush(30)
    time.sleep(1.0)  # the last records reach the consumer
    stop.set()
    lat_us, ts_lat_ms = out.get(timeout=60)
    proc.join(10)
    skip = int(warmup * rate)
    lat_us = sorted(lat_us[skip:])
    ts_lat_ms = sorted(ts_lat_ms[skip:])

    def pct(xs, q):
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    return {
        "sent": sent,
        "received": len(lat_us) + skip,
        "rate": sent / (warmup + seconds),
        "p50_ms": pct(lat_us, 0.50) / 1000,
        "p99_ms": pct(lat_us, 0.99) / 1000,
        "p999_ms": pct(lat_us, 0.999) / 1000,
        "max_ms": (lat_us[-1] / 1000) if lat_us else float("nan"),
        "ts_p50_ms": pct(ts_lat_ms, 0.50),
        "ts_p99_ms": pct(ts_lat_ms, 0.99),
        "ts_p999_ms": pct(ts_lat_ms, 0.999),
        "errors": errors.seen,
    }


def main(argv: list[str]) -> None:
    cmd, bootstrap, topic, *rest = argv
    if cmd == "produce":
        count, size, acks = int(rest[0]), int(rest[1]), rest[2]
        result = produce(bootstrap, topic, count, size, acks)
    elif cmd == "consume":
        result = consume(bootstrap, topic, int(rest[0]))
    elif cmd == "latency":
        result = latency(bootstrap, topic, int(rest[0]), float(rest[1]), int(rest[2]))
    else:
        raise SystemExit(f"unknown command {cmd}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
