"""librdkafka (confluent-kafka) workloads, run as a separate process; prints one JSON line.

    python bench/rdkafka_client.py produce  BOOTSTRAP TOPIC COUNT SIZE ACKS [--min-seconds S] [--spread N]
    python bench/rdkafka_client.py consume  BOOTSTRAP TOPIC COUNT [--min-seconds S] [--group GROUP]
    python bench/rdkafka_client.py latency  BOOTSTRAP TOPIC RATE SECONDS SIZE
    python bench/rdkafka_client.py swarm    BOOTSTRAP TOPIC PRODUCERS CONSUMERS SECONDS SIZE

The produce loop is a plain `for` loop around `Producer.produce()` with no per-message delivery
callback (a Python callback per record would halve the rate); success is checked afterwards from
the partitions' end offsets. At 100 B records this loop, not the broker, can be the limit.
`--full-batches BYTES`: batches of BYTES, closed when full (linger.ms=1000), so that the batches
are the same whichever broker takes them: with linger.ms=5 their size follows the broker's pace,
and a consumer's rate follows the batch size (how many whole batches fit in its 1 MiB per
partition per Fetch). `--min-seconds`: produce at least COUNT records and for at least that long
(the clock is read every 10,000 records). `--spread N`: records go to the partitions in turn, N to one partition
before the next (1: as records with many keys would), instead of librdkafka's sticky partitioner,
which fills one partition's batch at a time and leaves many partitions of a large topic unwritten
in a short run.

consume reads the topic from its start with `assign()`, or in a consumer group with `subscribe()`
(`--group`, a fresh group id; auto.offset.reset=earliest). Without `--min-seconds` it reads COUNT
records once. With it, at least COUNT records and at least that long from the first record: a
partition read to its end is read again from its start (seek on the end-of-partition event), so
a topic that takes less than that to read is read in passes. Each pass reads what the broker has
in the page cache, as the first one does (the topic was just written).

swarm: PRODUCERS producer and CONSUMERS consumer processes on one topic at once, the consumers
in one group. The consumers join first; once every partition is assigned, the producers run for
SECONDS (acks=1); the consumers read until they have every acknowledged record. Reports the
aggregate MB/s in (acknowledged bytes over the time until the last producer's flush returned) and
out (consumed bytes over the time until the last consumer had its last record).

RDKAFKA_CLIENT_CONFIG, a JSON object in the environment, is added to every producer and consumer
configuration: the security settings of an SSL or SASL_SSL listener (`security.protocol`,
`ssl.ca.location`, `sasl.mechanism`, ...), so that the command lines stay the same for every listener.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import struct
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

CLIENT_CONFIG = json.loads(os.environ.get("RDKAFKA_CLIENT_CONFIG") or "{}")

# The queue holds about half a second of records at the fastest rates seen here: enough to keep
# batches full, little enough that a run's final flush (a backlog the broker has not taken yet)
# is short; a full queue makes the loop wait for the broker.
PRODUCER_CONFIG = {
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 262_144,
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

# For reading a topic in passes: the end-of-partition event says when to seek back; fetch.wait.max.ms=10
# (500 by default) because at the end of a pass librdkafka has a fetch parked at the broker, and the
# seek waits for it to return. A broker with records on hand answers at once either way.
PASSES_CONFIG = {"enable.partition.eof": True, "fetch.wait.max.ms": 10}


class Errors:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, err: KafkaError) -> None:
        # transport hiccups are retried by librdkafka; keep the first few for the report
        if len(self.seen) < 5:
            self.seen.append(str(err))


# what a partition of a topic created a moment ago may answer until its leader has taken it up
NOT_YET_LED = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
               KafkaError.UNKNOWN_LEADER_EPOCH)


def high_watermarks(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """Partition -> high watermark, in one ListOffsets request per broker. Right after a topic is
    created a partition can still answer NOT_LEADER_OR_FOLLOWER (Kafka: the metadata names a leader
    before the leader has taken the partition up): such errors are asked again until `timeout_s`."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **CLIENT_CONFIG})
    partitions = sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    found: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        wanted = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions if p not in found}
        failed = None
        for tp, future in admin.list_offsets(wanted, request_timeout=10).items():
            try:
                found[tp.partition] = future.result().offset
            except KafkaException as e:
                error = e.args[0]
                if not (error.retriable() or error.code() in NOT_YET_LED) or time.monotonic() > deadline:
                    raise
                failed = e
        if failed is None:
            return found
        time.sleep(0.1)


def settled_end(bootstrap: str, topic: str, timeout_s: float = 30.0) -> int:
    """The topic's summed high watermarks once they stop moving: with replicas and acks=1 the high
    watermark trails the acknowledged records until the followers have fetched them."""
    last = sum(high_watermarks(bootstrap, topic).values())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = sum(high_watermarks(bootstrap, topic).values())
        if now == last:
            return now
        last = now
    return last


CHUNK = 10_000  # records between two looks at the clock


def _wait_for_room(p: Producer, produce_one) -> None:
    """The producer's queue is full: serve delivery reports until `produce_one()` fits."""
    while True:
        p.poll(0.005)
        try:
            produce_one()
            return
        except BufferError:
            continue


def produce(bootstrap: str, topic: str, count: int, size: int, acks: str, min_seconds: float = 0.0,
            spread: int = 0, full_batches: int = 0) -> dict:
    errors = Errors()
    config = {"bootstrap.servers": bootstrap, "acks": acks, "error_cb": errors, **PRODUCER_CONFIG}
    if full_batches:
        config.update({"batch.size": full_batches, "linger.ms": 1000})  # a batch closes when full, not on time
    p = Producer(config)
    before = settled_end(bootstrap, topic)
    md = p.list_topics(topic, timeout=10)  # metadata and connection before the clock starts
    partitions = sorted(md.topics[topic].partitions)
    value = os.urandom(size)
    produce_ = p.produce
    sent = 0
    t0 = time.perf_counter()
    deadline = t0 + min_seconds
    while sent < count or time.perf_counter() < deadline:
        n = min(CHUNK, count - sent) if sent < count else CHUNK
        if spread:
            for i in range(sent, sent + n):
                partition = partitions[i // spread % len(partitions)]
                try:
                    produce_(topic, value, partition=partition)
                except BufferError:
                    _wait_for_room(p, lambda: produce_(topic, value, partition=partition))
        else:
            for _ in range(n):
                try:
                    produce_(topic, value)
                except BufferError:
                    _wait_for_room(p, lambda: produce_(topic, value))
        sent += n
    left = p.flush(config["message.timeout.ms"] / 1000)  # no record outlives its timeout
    elapsed = time.perf_counter() - t0
    acked = settled_end(bootstrap, topic) - before
    return {
        "records": sent,
        "acked": acked,
        "bytes": acked * size,
        "seconds": elapsed,
        "records_per_s": acked / elapsed,
        "mb_per_s": acked * size / elapsed / 1e6,
        "unflushed": left,
        "errors": errors.seen,
    }


def consume(bootstrap: str, topic: str, count: int, min_seconds: float = 0.0, group: str | None = None) -> dict:
    errors = Errors()
    config = {"bootstrap.servers": bootstrap, "error_cb": errors, **CONSUMER_CONFIG, **PASSES_CONFIG}
    if group:
        config.update({"group.id": group, "auto.offset.reset": "earliest"})
    c = Consumer(config)
    md = c.list_topics(topic, timeout=10)
    parts = sorted(md.topics[topic].partitions)
    t_start = time.perf_counter()
    if group:
        c.subscribe([topic])
    else:
        c.assign([TopicPartition(topic, p, 0) for p in parts])
    got = 0
    nbytes = 0
    seeks = 0
    t0 = t_end = None
    deadline = time.monotonic() + 120 + min_seconds
    while time.monotonic() < deadline:
        more_time = t0 is None or t_end - t0 < min_seconds
        if got >= count and not more_time:
            break
        # consume(n) waits for n records or the timeout: never ask for more than are needed, and
        # wait briefly (an end-of-partition event waits in the batch for the timeout to pass)
        msgs = c.consume(num_messages=10_000 if more_time else min(10_000, count - got), timeout=0.01)
        if msgs and t0 is None:
            t0 = time.perf_counter()  # from the first batch: connection set-up (and the join) are not throughput
        for m in msgs:
            err = m.error()
            if err is None:
                got += 1
                nbytes += len(m.value())
            elif err.code() == KafkaError._PARTITION_EOF:
                # another pass over a partition read to its end, while more records or time are wanted;
                # an empty partition is left alone (it would be sought to again at once, and again)
                if min_seconds and m.offset() > 0 and (got < count or more_time):
                    c.seek(TopicPartition(topic, m.partition(), OFFSET_BEGINNING))
                    seeks += 1
            else:
                errors(err)
        if msgs:
            t_end = time.perf_counter()
    elapsed = (t_end - t0) if t0 is not None else 0.0
    c.close()
    return {
        "records": got,
        "bytes": nbytes,
        "seconds": elapsed,
        "records_per_s": got / elapsed if elapsed else 0.0,
        "mb_per_s": nbytes / elapsed / 1e6 if elapsed else 0.0,
        "first_record_s": (t0 - t_start) if t0 is not None else float("nan"),
        "seeks": seeks,
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


# A swarm's producers queue less than the single producer: ten queues of 256 MiB would not fit, and the
# producers should wait for the broker rather than fill memory.
SWARM_PRODUCER_CONFIG = {**PRODUCER_CONFIG, "queue.buffering.max.messages": 100_000,
                         "queue.buffering.max.kbytes": 32_768}


def _swarm_producer(bootstrap: str, topic: str, size: int, seconds: float, ready, go, out) -> None:
    errors = Errors()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "error_cb": errors, **SWARM_PRODUCER_CONFIG})
    p.list_topics(topic, timeout=10)
    value = os.urandom(size)
    produce_ = p.produce
    ready.release()
    go.wait()
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        for _ in range(1_000):
            try:
                produce_(topic, value)
            except BufferError:
                _wait_for_room(p, lambda: produce_(topic, value))
        sent += 1_000
    left = p.flush(120)
    out.put(("producer", {"sent": sent, "unflushed": left, "done": time.monotonic(), "errors": errors.seen}))


def _swarm_consumer(bootstrap: str, topic: str, group: str, index: int, assigned, received, stop, out) -> None:
    errors = Errors()

    def on_assign(consumer, partitions):
        assigned[index] = len(partitions)

    def on_revoke(consumer, partitions):
        assigned[index] = 0

    c = Consumer({"bootstrap.servers": bootstrap, "error_cb": errors, **CONSUMER_CONFIG,
                  "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    got = nbytes = 0
    last = None
    while not stop.is_set():
        msgs = c.consume(num_messages=1_000, timeout=0.1)
        for m in msgs:
            if m.error() is None:
                got += 1
                nbytes += len(m.value())
            else:
                errors(m.error())
        if msgs:
            last = time.monotonic()
            received[index] = got
    c.close()
    out.put(("consumer", {"records": got, "bytes": nbytes, "last": last, "errors": errors.seen}))


def _collect(out, reports: dict[str, list[dict]], kind: str, n: int, procs: list, deadline: float) -> None:
    """Reports from the queue until `n` of `kind` are in; a swarm process that died without one
    (exit code not 0) ends the wait with its exit code rather than at the deadline."""
    while len(reports[kind]) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(reports[kind])} of {n} {kind}s reported in time")
        try:
            got_kind, report = out.get(timeout=0.5)
        except queue.Empty:
            dead = [proc.exitcode for proc in procs if proc.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"swarm processes exited with {dead}") from None
            continue
        reports[got_kind].append(report)


def swarm(bootstrap: str, topic: str, producers: int, consumers: int, seconds: float, size: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    partitions = len(high_watermarks(bootstrap, topic))
    assigned = ctx.Array("i", consumers)  # partitions each consumer owns
    received = ctx.Array("q", consumers)  # records each consumer has had
    ready, go, stop, out = ctx.Semaphore(0), ctx.Event(), ctx.Event(), ctx.Queue()
    group = f"swarm-{topic}-{os.getpid()}"
    procs = [ctx.Process(target=_swarm_consumer, args=(bootstrap, topic, group, i, assigned, received, stop, out))
             for i in range(consumers)]
    procs += [ctx.Process(target=_swarm_producer, args=(bootstrap, topic, size, seconds, ready, go, out))
              for _ in range(producers)]
    try:
        t_join = time.monotonic()
        for proc in procs[:consumers]:
            proc.start()
        # the group is settled when every partition has exactly one owner and every member has some
        # (members joining one after another rebalance it several times), and stays so for a second
        deadline = time.monotonic() + 120
        stable_since = None
        while time.monotonic() < deadline:
            counts = list(assigned)
            if sum(counts) == partitions and min(counts) > 0:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= 1.0:
                    break
            else:
                stable_since = None
            time.sleep(0.05)
        else:
            raise RuntimeError(f"the group of {consumers} did not settle: partitions owned per member {list(assigned)}")
        join_s = stable_since - t_join
        for proc in procs[consumers:]:
            proc.start()
        for _ in range(producers):
            if not ready.acquire(timeout=60):
                raise RuntimeError("a swarm producer did not connect")
        t0 = time.monotonic()
        go.set()
        reports: dict[str, list[dict]] = {"producer": [], "consumer": []}
        _collect(out, reports, "producer", producers, procs, deadline=time.monotonic() + seconds + 180)
        acked = settled_end(bootstrap, topic)
        drain_deadline = time.monotonic() + 60  # the consumers read on until they have every acknowledged record
        while sum(received) < acked and time.monotonic() < drain_deadline:
            time.sleep(0.05)
        stop.set()
        _collect(out, reports, "consumer", consumers, procs, deadline=time.monotonic() + 60)
    finally:
        stop.set()
        go.set()
        for proc in procs:
            if proc.pid is None:  # never started: the group did not settle
                continue
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    seconds_in = max(r["done"] for r in reports["producer"]) - t0
    consumed = sum(r["records"] for r in reports["consumer"])
    bytes_out = sum(r["bytes"] for r in reports["consumer"])
    lasts = [r["last"] for r in reports["consumer"] if r["last"] is not None]
    seconds_out = (max(lasts) - t0) if lasts else float("nan")
    errors = [e for r in reports["producer"] + reports["consumer"] for e in r["errors"]][:5]
    return {
        "records": acked,
        "consumed": consumed,
        "bytes_in": acked * size,
        "bytes_out": bytes_out,
        "bytes": acked * size + bytes_out,
        "seconds": seconds_in,
        "seconds_out": seconds_out,
        "records_per_s": acked / seconds_in,
        "mb_per_s": acked * size / seconds_in / 1e6,
        "mb_per_s_out": bytes_out / seconds_out / 1e6 if lasts else 0.0,
        "join_s": join_s,
        "unflushed": sum(r["unflushed"] for r in reports["producer"]),
        "errors": errors,
    }



def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("produce", "consume", "latency", "swarm"):
        cmd = sub.add_parser(name)
        cmd.add_argument("bootstrap")
        cmd.add_argument("topic")
        if name == "produce":
            cmd.add_argument("count", type=int)
            cmd.add_argument("size", type=int)
            cmd.add_argument("acks")
            cmd.add_argument("--spread", type=int, default=0, metavar="N",
                             help="records to the partitions in turn, N to each")
            cmd.add_argument("--full-batches", type=int, default=0, metavar="BYTES",
                             help="batches of BYTES each, whatever the broker's pace (the same data on every broker)")
        elif name == "consume":
            cmd.add_argument("count", type=int)
            cmd.add_argument("--group", help="subscribe() in this consumer group instead of assign()")
        elif name == "latency":
            cmd.add_argument("rate", type=int)
            cmd.add_argument("seconds", type=float)
            cmd.add_argument("size", type=int)
        else:
            cmd.add_argument("producers", type=int)
            cmd.add_argument("consumers", type=int)
            cmd.add_argument("seconds", type=float)
            cmd.add_argument("size", type=int)
        if name in ("produce", "consume"):
            cmd.add_argument("--min-seconds", type=float, default=0.0, help="and run at least this long")
    a = ap.parse_args(argv)
    if a.cmd == "produce":
        result = produce(a.bootstrap, a.topic, a.count, a.size, a.acks, a.min_seconds, a.spread, a.full_batches)
    elif a.cmd == "consume":
        result = consume(a.bootstrap, a.topic, a.count, a.min_seconds, a.group)
    elif a.cmd == "latency":
        result = latency(a.bootstrap, a.topic, a.rate, a.seconds, a.size)
    else:
        result = swarm(a.bootstrap, a.topic, a.producers, a.consumers, a.seconds, a.size)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
