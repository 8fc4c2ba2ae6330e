"""odradek against Apache Kafka on the same machine, same run, same clients.

    python bench/run.py [--quick] [--only kafka|odradek] [--kafka-version 4.x.y] [--commit REV]

Fetches the newest Apache Kafka 4.x from Maven Central (cached in .cache/bench), then runs the
workloads in sessions; each session starts a fresh broker of each kind, Kafka first and then odradek,
and the runs of each row take turns (Kafka, odradek, Kafka, odradek, ...): one broker works while the
other sits idle, and a drift in the machine's load during a row falls on both alike instead of on
whichever broker ran later. Both brokers run with their defaults plus the settings by
which Kafka's sample server.properties departs from Kafka's defaults (bench/brokers.py SHARED_CONFIG);
the configs both report through DescribeConfigs are compared in the report.

  1. produce throughput with librdkafka (confluent-kafka): record size x acks x partitions
  2. produce throughput with kafka-producer-perf-test (the Java client): the same matrix
  3. consume throughput of a filled topic: librdkafka with assign(), librdkafka in a consumer group
     (subscribe()), kafka-consumer-perf-test (a group); end-to-end latency at a fixed rate
  4. scale: 10 producer and 10 consumer processes (one group) at once on a 20-partition topic, MB/s in
     and out; produce and consume throughput on one topic of 1,000 partitions
  5. three-broker clusters (bench/cluster.py): produce with replication factor 3, acks=1 against
     acks=all, and the time from kill -9 of a leader to the next acknowledged record
  6. security (bench/security.py): produce and consume throughput over PLAINTEXT, SSL and SASL_SSL
     (PLAIN) listeners of one broker, the same key store and settings for both brokers

How a throughput row is measured (sessions 1-4 and 6): each run is long enough to tell 10% apart
(at least 5 s of measured work in the full plan: the librdkafka clients run until they have moved
their record count AND that long; the Java tools get record counts sized for 5 s on the faster
broker here), and each row runs 3 times per broker (the consume rows 5); the table shows the median run, the spread of
the runs (± half their range, relative to the median), and the broker's CPU seconds (user+system of
the broker process during the runs' measured client process, not topic set-up) per GB of record
bytes in (produce rows) or out (consume rows), the median over the runs. Every run is in the details.
The measured consumer of a consume row runs on the upper half of the CPUs (on 2 cores, the second;
see consumer_cpus), the broker anywhere: a consumer left to wander between cores made the spread of
these client-bound rows wider than the differences they are read for.

Sessions 1-4 also measure start-up (process start to the first acknowledged produce), idle RSS
and peak RSS (VmHWM). The table goes to stdout and to bench/results/<date>-<commit>.md.
Benchmarks report numbers; they never fail a build on speed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import brokers  # noqa: E402
import cluster  # noqa: E402
import java_tools  # noqa: E402
import kafka_dist  # noqa: E402
import security  # noqa: E402

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RDKAFKA_CLIENT = BENCH / "rdkafka_client.py"

FULL = {
    "repeat": 3,  # runs of every throughput row per broker: the median is shown, with the spread
    # the consume rows: short (5-15 s) and client-bound, so the spread of 3 runs was as wide as the
    # differences they are read for
    "consume_repeat": 5,
    "min_seconds": 5.0,  # a librdkafka producer or consumer runs at least this long (and its count)
    "produce": [(size, acks, parts) for size in (100, 1024) for acks in ("1", "all") for parts in (1, 6)],
    # librdkafka: the least records per run (5 s decide here); Java: records per run, about 5 s at the
    # faster broker's rate on 2 cores (odradek: 100 B 200,000-360,000 rec/s, 1 KiB 40,000-70,000)
    "count": {("rdkafka", 100): 2_000_000, ("rdkafka", 1024): 500_000,
              ("java", 100): 2_500_000, ("java", 1024): 500_000},
    "warmup": (1_000_000, 200_000),  # 100 B and 1 KiB records produced and consumed, not timed
    # record size, partitions, records filled, least records a librdkafka consumer reads (it reads in
    # passes for min_seconds): the Java consumer reads every record filled, enough for its 5 s at the
    # faster broker (3.2 M rec/s of 100 B, 600 MB/s of 1 KiB at 64c1cd6, when 9 M and 2 M took 2.8-4.5 s)
    "consume": [(100, 1, 16_000_000, 5_000_000), (1024, 6, 3_200_000, 2_000_000)],
    # the consume rows' topics are written in batches of this size, records to the partitions in
    # turn, on both brokers: the same data in the same partitions
    "fill_batch_bytes": 262_144,
    "latency": (10_000, 10.0, 1024),  # rate, seconds, record size
    "swarm": (10, 10, 20, 1024, 10.0),  # producers, consumers, partitions, record size, seconds
    # partitions, record size, acks, least records per run, records to one partition before the next
    "many_partitions": (1000, 1024, "1", 100_000, 100),
    "cluster": (300_000, 1024),  # records per produce row, record size (bench/cluster.py)
    # least records per row, record size, partitions, warm-up records
    "security": (500_000, 1024, 6, 200_000),
}
QUICK = {
    "repeat": 1,
    "consume_repeat": 1,
    "min_seconds": 2.0,
    "produce": [(100, "1", 1), (1024, "all", 6)],
    "count": {("rdkafka", 100): 500_000, ("rdkafka", 1024): 150_000,
              ("java", 100): 300_000, ("java", 1024): 100_000},
    "warmup": (300_000, 100_000),
    "consume": [(100, 1, 500_000, 500_000)],
    "fill_batch_bytes": 262_144,
    "latency": (10_000, 4.0, 1024),
    "swarm": (10, 10, 20, 1024, 4.0),
    "many_partitions": (1000, 1024, "1", 50_000, 100),
    "cluster": (100_000, 1024),
    "security": (300_000, 1024, 6, 100_000),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------- helpers

def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(60)
    # wait until every partition has a leader in the metadata
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md and md.error is None and len(md.partitions) == partitions and all(
                p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.05)


# Kafka removes deleted logs in a task first run 30 s after start-up, then log.segment.delete.delay.ms
# after each deletion.
DELETE_WAIT_S = 45.0


def delete_topic(broker, topic: str) -> None:
    """Gigabytes a run wrote go once it is measured, and the next run starts only when the broker has
    removed their files (both brokers get log.segment.delete.delay.ms=1000 for it: brokers.SHARED_CONFIG).

    The page cache a run writes must not depend on what the other broker left: on a virtual machine
    whose memory the host backs only as it is touched, page cache still held by the previous run's
    files makes the next run write into untouched memory, and the copy into the page cache then costs
    several times the CPU (the 10 producers + 10 consumers row, measured alone: 155 against 330 MB/s
    in, with 2.6 GB of other files cached or not). Kafka's default deletion delay of a minute held its
    runs' files through the odradek run after them, which deleted its own at once."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # held: a dropped client cancels its requests
    admin.delete_topics([topic])[topic].result(60)
    pattern = re.compile(re.escape(topic) + r"-\d+($|\.)")  # topic-N, and topic-N.<id>-delete once renamed
    deadline = time.monotonic() + DELETE_WAIT_S
    while time.monotonic() < deadline:
        if not broker.data.exists() or not any(pattern.match(entry) for entry in os.listdir(broker.data)):
            return
        time.sleep(0.1)
    log(f"{broker.name}: the files of {topic} are still there {DELETE_WAIT_S:.0f} s after its deletion")


def count_records(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "odradek-bench-count"})
    try:
        md = c.list_topics(topic, timeout=10)
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in md.topics[topic].partitions)
    finally:
        c.close()


def consumer_cpus() -> set[int] | None:
    """The CPUs a measured consumer runs on: the upper half of those this process may use (on 2
    cores, the second), None on one CPU. The broker stays free to run anywhere.

    A consumer is the bottleneck of a consume row (librdkafka's Python loop, the Java tool's record
    loop), and unpinned its threads wander between the cores it shares with the broker: the same
    client at the same CPU time then read 115-177 MB/s from run to run, and the rows spread ±4-21% over
    5 runs, wider than the differences they are read for. Pinned, they spread ±1-5.5%."""
    cpus = sorted(os.sched_getaffinity(0))
    return set(cpus[len(cpus) // 2:]) if len(cpus) > 1 else None


CONSUMER_CPUS = consumer_cpus()


def rdkafka(args: list, timeout: float = 240, client: dict | None = None, cpus: set[int] | None = None) -> dict:
    """bench/rdkafka_client.py; `client`: extra librdkafka settings (a listener's security settings);
    `cpus`: the CPUs it runs on (see consumer_cpus)."""
    env = dict(os.environ, RDKAFKA_CLIENT_CONFIG=json.dumps(client)) if client else None
    try:
        r = subprocess.run([sys.executable, str(RDKAFKA_CLIENT), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=brokers.on_cpus(cpus))
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"confluent-kafka client timed out after {timeout:.0f} s") from None
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"confluent-kafka client failed (exit {r.returncode}): {r.stderr.strip()[-400:]}")
    return json.loads(lines[-1])


def produced(res: dict, least: int) -> dict:
    """A librdkafka produce result, checked: every record sent acknowledged, at least `least` of them."""
    if res["acked"] != res["records"] or res["records"] < least:
        raise RuntimeError(f"{res['acked']} of {res['records']} records acknowledged (at least {least} wanted); "
                           f"client errors {res['errors']}")
    return res


def consumed(res: dict, least: int) -> dict:
    if res["records"] < least:
        raise RuntimeError(f"consumed {res['records']} of {least}; client errors {res['errors']}")
    return res


def median_run(runs: list[dict]) -> dict:
    """The median of `runs` by MB/s (the lower middle one of an even number), with every run under
    "each", their MB/s under "runs", the spread (half their range over the median, in %) and the
    median over the runs of the broker's CPU seconds per GB (and, for a swarm, of the MB/s out,
    with its own spread)."""
    if len(runs) == 1:
        return runs[0]
    if "mb_per_s" not in runs[0]:  # latency runs: the median of each percentile, with its spread
        summary = dict(runs[0], each=runs)
        for figure in [key for key in runs[0] if key.endswith("_ms") and not key.startswith("ts_")]:
            values = [r[figure] for r in runs]
            middle = statistics.median(values)
            summary[figure] = middle
            summary[f"{figure}_spread_pct"] = 100 * (max(values) - min(values)) / 2 / middle if middle else float("nan")
        return summary
    ranked = sorted(runs, key=lambda r: r["mb_per_s"])
    median = ranked[(len(ranked) - 1) // 2]
    summary = dict(median, each=runs, runs=[round(r["mb_per_s"], 1) for r in runs],
                   spread_pct=100 * (ranked[-1]["mb_per_s"] - ranked[0]["mb_per_s"]) / 2 / median["mb_per_s"]
                   if median["mb_per_s"] else float("nan"))
    for figure in ("cpu_s_per_gb", "mb_per_s_out"):
        values = [r[figure] for r in runs if figure in r]
        if len(values) == len(runs):
            summary[figure] = statistics.median(values)
    if "mb_per_s_out" in summary:
        outs = [r["mb_per_s_out"] for r in runs]
        summary["spread_out_pct"] = (100 * (max(outs) - min(outs)) / 2 / summary["mb_per_s_out"]
                                     if summary["mb_per_s_out"] else float("nan"))
    return summary


class Session:
    """One broker process; runs workloads on it and keeps, per workload, the median of its runs.

    A run is `prepare(broker, i)` (topic creation: not measured), `work(broker, context)` (measured:
    wall time, broker CPU, the client processes' CPU) and `cleanup(broker, context)` (topic deletion:
    not measured); `context` is what prepare returned, else the run's index.
    """

    def __init__(self, broker: brokers.Broker, results: dict, errors: list):
        self.broker = broker
        self.results = results
        self.errors = errors
        self.dead = False

    def drop_topic(self, topic: str) -> None:
        """Delete `topic` after the rows that read it; a failure is reported, not raised."""
        if self.dead:
            return
        try:
            delete_topic(self.broker, topic)
        except Exception as e:  # noqa: BLE001 - the rows stand; the leftover topic is reported
            self.errors.append(f"{self.broker.name}: deleting {topic} failed: {str(e)[:300]}")

    def run(self, key: tuple, work, repeat: int = 1, prepare=None, cleanup=None) -> None:
        """`repeat` runs of a workload on this broker alone (see alternate)."""
        alternate([self], key, work, repeat, prepare, cleanup)

    def keep(self, key: tuple, runs: list[dict]) -> None:
        """results[key] is the median of the runs (see median_run)."""
        self.results[key] = median_run(runs)
        if len(runs) > 1 and "mb_per_s" in self.results[key]:
            r = self.results[key]
            log(f"{self.broker.name}:   median {r['mb_per_s']:.4g} MB/s ±{r['spread_pct']:.1f}% of {r['runs']}")

    def run_once(self, key: tuple, i: int, repeat: int, work, prepare, cleanup) -> dict:
        name = self.broker.name
        label = " ".join(map(str, key)) + (f" #{i + 1}" if repeat > 1 else "")
        if self.dead:
            return {"error": "broker died earlier"}
        log(f"{name}: {label}")
        context, prepared = i, prepare is None
        try:
            if prepare is not None:
                context = prepare(self.broker, i)
                prepared = True
            cpu0, t0 = self.broker.cpu_seconds(), time.monotonic()
            kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            res = work(self.broker, context)
            wall = time.monotonic() - t0
            if self.broker.alive():
                res["broker_cpu_s"] = self.broker.cpu_seconds() - cpu0
                kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the client processes, once they exited
                res["client_cpu_s"] = (kids.ru_utime + kids.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
                res["wall_s"] = wall
                if res.get("bytes"):
                    res["cpu_s_per_gb"] = res["broker_cpu_s"] / (res["bytes"] / 1e9)
        except Exception as e:  # report, go on with the next workload
            res = {"error": str(e)[:600]}
            self.errors.append(f"{name} {label}: {str(e)[:600]}")
        if not self.broker.alive():
            self.dead = True
            tail = self.broker.log_tail(40)
            self.errors.append(f"{name} died during {label}; log tail:\n{tail}")
            res.setdefault("error", "broker died")
        elif cleanup is not None and prepared:
            try:
                cleanup(self.broker, context)
            except Exception as e:  # noqa: BLE001 - the run's figures stand; the leftover topic is reported
                self.errors.append(f"{name} {label}: cleanup failed: {str(e)[:300]}")
        if res.get("errors"):
            self.errors.append(f"{name} {label}: client reported {res['errors']}")
        summary = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in res.items() if k != "errors")
        log(f"{name}:   {summary}")
        return res


def alternate(sessions: list[Session], key: tuple, work, repeat: int = 1, prepare=None, cleanup=None) -> None:
    """`repeat` runs of one workload on each session's broker, taking turns (Kafka, odradek, Kafka,
    odradek, ...), so that a drift in the machine's load over the minutes of a row falls on both
    brokers alike instead of on whichever ran later. Each session's results[key] is the median of its
    runs, or its first failed run (after which that broker runs no more of the row)."""
    runs: dict[int, list[dict]] = {id(s): [] for s in sessions}
    going = list(sessions)
    for i in range(repeat):
        for s in list(going):
            res = s.run_once(key, i, repeat, work, prepare, cleanup)
            if "error" in res or "na" in res:
                s.results[key] = res
                going.remove(s)
            else:
                runs[id(s)].append(res)
    for s in going:
        s.keep(key, runs[id(s)])


# ------------------------------------------------------------------------------------- sessions

def session_produce(sessions: list[Session], plan: dict, client: str, libs: Path, log4j: Path) -> None:
    for size, acks, parts in plan["produce"]:
        count = plan["count"][(client, size)]
        base = f"produce-{client}-{size}b-acks{acks}-p{parts}"

        def prepare(b, i, base=base, parts=parts):
            create_topic(b.bootstrap, f"{base}-{i}", parts)
            return f"{base}-{i}"

        def work(b, topic, size=size, acks=acks, count=count):
            if client == "rdkafka":
                return produced(rdkafka(["produce", b.bootstrap, topic, count, size, acks,
                                         "--min-seconds", plan["min_seconds"]]), count)
            res = java_tools.producer_perf(libs, log4j, b.bootstrap, topic, count, size, acks)
            stored = count_records(b.bootstrap, topic)
            if stored != count:
                raise RuntimeError(f"{stored} of {count} records stored; tool said {res}")
            return res

        alternate(sessions, ("produce", client, size, acks, parts), work, plan["repeat"], prepare,
                  cleanup=lambda b, topic: delete_topic(b, topic))


def session_consume(sessions: list[Session], plan: dict, libs: Path, log4j: Path) -> None:
    repeat, min_seconds = plan["consume_repeat"], plan["min_seconds"]
    for size, parts, count, rdkafka_count in plan["consume"]:
        topic = f"consume-{size}b-p{parts}"

        def fill(b, _, topic=topic, size=size, parts=parts, count=count):
            create_topic(b.bootstrap, topic, parts)
            produced(rdkafka(["produce", b.bootstrap, topic, count, size, "1",
                              "--full-batches", plan["fill_batch_bytes"], "--spread", 1], timeout=600), count)
            return {"records": count}

        for s in sessions:
            s.run(("fill", size, parts), fill)

        def consume_rd(b, i, topic=topic, count=rdkafka_count):
            return consumed(rdkafka(["consume", b.bootstrap, topic, count, "--min-seconds", min_seconds],
                                    cpus=CONSUMER_CPUS), count)

        alternate(sessions, ("consume", "rdkafka", size, parts), consume_rd, repeat)

        def consume_group(b, i, topic=topic, count=rdkafka_count):
            return consumed(rdkafka(["consume", b.bootstrap, topic, count, "--min-seconds", min_seconds,
                                     "--group", f"bench-rdkafka-{topic}-{i}"], cpus=CONSUMER_CPUS), count)

        alternate(sessions, ("consume", "rdkafka-group", size, parts), consume_group, repeat)

        def consume_java(b, i, topic=topic, count=count):
            try:
                return java_tools.consumer_perf(libs, log4j, b.bootstrap, topic, count, f"bench-java-{topic}-{i}",
                                                timeout=240, cpus=CONSUMER_CPUS)
            except java_tools.ToolFailed as e:
                if b.name == "odradek":
                    return {"na": "needs consumer groups", "detail": str(e)[:400]}
                raise

        alternate(sessions, ("consume", "java", size, parts), consume_java, repeat)
        for s in sessions:
            s.drop_topic(topic)

    rate, seconds, size = plan["latency"]

    def lat(b, i):
        create_topic(b.bootstrap, f"latency-{i}", 1)
        return rdkafka(["latency", b.bootstrap, f"latency-{i}", rate, seconds, size], timeout=120)

    alternate(sessions, ("latency",), lat, plan["repeat"])


# Kafka here takes two major page faults per partition at its first write to a partition's new index
# files (memory-mapped, sparse) after the kernel first wrote them back: dirty pages expire after 30 s
# (vm.dirty_expire_centisecs), the flusher runs every 5 s. Each fault reads the sparse file ahead and
# zeroes the pages it reads (ext4_mpage_readpages -> zero_user_segments: 96% of Kafka's samples then),
# 5 ms of system time on one machine, 75 ms on another (Linux 6.18), where 1,000 new partitions kept
# Kafka's request thread busy for 150 s. The many-partitions topic is written twice, this long apart,
# before its rows are measured, and the writes that prime it may take that long.
FIRST_WRITEBACK_S = 40
PRIME_PATIENCE_S = 600


def session_scale(sessions: list[Session], plan: dict) -> None:
    """Many clients at once, and many partitions: 10 producer and 10 consumer processes on one topic;
    produce to and consume from one topic of 1,000 partitions.

    The many-partitions topic is written untimed first, twice (see FIRST_WRITEBACK_S; the swarm rows
    run in between) and read once, so that one-off costs of new partitions and the JIT's first look
    at requests of 1,000 partitions stay out of its rows."""
    repeat, min_seconds = plan["repeat"], plan["min_seconds"]
    parts, size, acks, count, turn = plan["many_partitions"]
    topic = f"partitions-{parts}"

    def prime(b, i):
        if i == 0:
            create_topic(b.bootstrap, topic, parts)
        res = produced(rdkafka(["produce", b.bootstrap, topic, parts * turn, size, acks, "--spread", turn],
                               timeout=PRIME_PATIENCE_S + 60, client={"message.timeout.ms": PRIME_PATIENCE_S * 1000}),
                       parts * turn)
        if i == 1:
            consumed(rdkafka(["consume", b.bootstrap, topic, 2 * parts * turn], timeout=600), 2 * parts * turn)
        return res

    for s in sessions:
        s.run(("prime", size, parts, 1), prime)
    primed = time.monotonic()

    swarm_producers, swarm_consumers, swarm_parts, swarm_size, seconds = plan["swarm"]

    def prepare_swarm(b, i):
        create_topic(b.bootstrap, f"swarm-{i}", swarm_parts)
        return f"swarm-{i}"

    def swarm(b, name):
        res = rdkafka(["swarm", b.bootstrap, name, swarm_producers, swarm_consumers, seconds, swarm_size],
                      timeout=seconds + 400)
        if res["consumed"] != res["records"] or not res["records"]:
            raise RuntimeError(f"consumed {res['consumed']} of {res['records']} acknowledged records; "
                               f"client errors {res['errors']}")
        return res

    alternate(sessions, ("swarm", swarm_producers, swarm_consumers, swarm_size, swarm_parts), swarm, repeat,
              prepare_swarm, cleanup=lambda b, name: delete_topic(b, name))

    sessions = [s for s in sessions if "error" not in s.results[("prime", size, parts, 1)]]
    time.sleep(max(0.0, primed + FIRST_WRITEBACK_S - time.monotonic()))
    for s in sessions:
        s.run(("prime", size, parts, 2), lambda b, _: prime(b, 1))
    sessions = [s for s in sessions if "error" not in s.results[("prime", size, parts, 2)]]

    def produce(b, _):
        return produced(rdkafka(["produce", b.bootstrap, topic, count, size, acks, "--spread", turn,
                                 "--min-seconds", min_seconds], timeout=600), count)

    produce_key = ("produce", "rdkafka-spread", size, acks, parts)
    alternate(sessions, produce_key, produce, repeat)
    stored = {}  # broker name -> records in the topic
    for s in sessions:
        written = s.results[produce_key]
        if "error" not in written:
            stored[s.broker.name] = 2 * parts * turn + sum(r["acked"] for r in written.get("each") or [written])

    def consume(b, _):
        return consumed(rdkafka(["consume", b.bootstrap, topic, stored[b.name], "--min-seconds", min_seconds],
                                cpus=CONSUMER_CPUS), stored[b.name])

    alternate([s for s in sessions if s.broker.name in stored], ("consume", "rdkafka", size, parts), consume,
              plan["consume_repeat"])
    for s in sessions:
        s.drop_topic(topic)


def warmup(s: Session, plan: dict) -> None:
    """Produce and consume some records first: the JVM's JIT (and odradek's caches) start warm."""
    n_small, n_large = plan["warmup"]

    def work(b, _):
        create_topic(b.bootstrap, "warmup", 6)
        rdkafka(["produce", b.bootstrap, "warmup", n_small, 100, "1"])
        rdkafka(["produce", b.bootstrap, "warmup", n_large, 1024, "all"])
        return rdkafka(["consume", b.bootstrap, "warmup", n_small + n_large])

    s.run(("warm-up",), work, cleanup=lambda b, _: delete_topic(b, "warmup"))


SESSIONS = ("produce-rdkafka", "produce-java", "consume", "scale")


def start_broker(broker: brokers.Broker, kind: str, errors: list) -> bool:
    """Start `broker` for a session of `kind`; False, reported in `errors`, when it does not start."""
    log(f"{broker.name}: starting for the {kind} session")
    try:
        broker.start()
    except Exception as e:
        errors.append(f"{broker.name} failed to start ({kind}): {e}\n{broker.log_tail(30)}")
        log(f"{broker.name}: failed to start: {e}")
        broker.stop()
        return False
    return True


def run_session(kind: str, pairs: list[tuple[brokers.Broker, dict]], plan: dict, errors: list,
                libs: Path, log4j: Path) -> None:
    """One session of `kind` on fresh brokers, all running at once (each (broker, its results)),
    started in order; their rows alternate (see alternate). A broker idle meanwhile costs the other
    next to nothing (both sit in poll/epoll waits)."""
    sessions = []
    try:
        for broker, results in pairs:
            if not start_broker(broker, kind, errors):
                continue
            log(f"{broker.name}: port open after {broker.port_open_s:.2f} s, first produce acknowledged after "
                f"{broker.startup_s:.2f} s")
            results.setdefault("startup_s", []).append(broker.startup_s)
            time.sleep(2.0)
            results.setdefault("idle_rss", []).append(broker.memory()["VmRSS"])
            if "config" not in results:
                try:
                    results["config"] = brokers.broker_config(broker.bootstrap)
                except Exception as e:  # noqa: BLE001 - the comparison is left out of the report, the run goes on
                    errors.append(f"{broker.name}: DescribeConfigs of the broker failed: {e}")
            sessions.append(Session(broker, results, errors))
        for s in sessions:
            warmup(s, plan)
        if kind == "produce-rdkafka":
            session_produce(sessions, plan, "rdkafka", libs, log4j)
        elif kind == "produce-java":
            session_produce(sessions, plan, "java", libs, log4j)
        elif kind == "consume":
            session_consume(sessions, plan, libs, log4j)
        else:
            session_scale(sessions, plan)
        for s in sessions:
            if s.broker.alive():
                s.results.setdefault("peak_rss", []).append(s.broker.memory()["VmHWM"])
    finally:
        for broker, _ in pairs:
            broker.stop()
            shutil.rmtree(broker.data, ignore_errors=True)  # keep the logs, not gigabytes of records


def session_security(broker: brokers.Broker, plan: dict, results: dict, errors: list,
                     stores: security.Stores) -> None:
    """One broker with PLAINTEXT, SSL and SASL_SSL listeners: per listener, produce 1 KiB records
    (acks=1) and consume them back with librdkafka, `repeat` runs each of at least `min_seconds`;
    the consume row reads the topic of the first produce run. Topics are created over PLAINTEXT:
    only the timed clients use the listener under test. Start-up and RSS are not counted with the
    other sessions' (a different configuration)."""
    count, size, parts, n_warm = plan["security"]
    repeat, min_seconds = plan["repeat"], plan["min_seconds"]
    broker.secure(list(security.LISTENERS[1:]), security.broker_config(stores))
    if not start_broker(broker, "security", errors):
        return
    s = Session(broker, results, errors)
    clients = {listener: security.client_config(listener, stores) for listener in security.LISTENERS}
    try:
        results["tls"] = security.negotiated(broker.address("SSL"), stores)
        log(f"{broker.name}: TLS {results['tls']}")

        def warm(_broker, _):
            """Every path once before the clock starts: produce over PLAINTEXT and SSL, consume over
            SASL_SSL (Kafka's TLS code, as its other code, is interpreted until the JIT compiles it)."""
            create_topic(broker.bootstrap, "security-warmup", parts)
            for listener in ("PLAINTEXT", "SSL"):
                rdkafka(["produce", broker.address(listener), "security-warmup", n_warm, size, "1"],
                        client=clients[listener])
            return rdkafka(["consume", broker.address("SASL_SSL"), "security-warmup", 2 * n_warm],
                           client=clients["SASL_SSL"])

        s.run(("security", "warm-up"), warm, cleanup=lambda _broker, _: delete_topic(broker, "security-warmup"))
        for listener in security.LISTENERS:
            address, client = broker.address(listener), clients[listener]
            topic = f"security-{listener.lower()}"

            def prepare(_broker, i, topic=topic):
                create_topic(broker.bootstrap, f"{topic}-{i}", parts)
                return f"{topic}-{i}"

            def produce(_broker, name, address=address, client=client):
                return produced(rdkafka(["produce", address, name, count, size, "1", "--min-seconds", min_seconds],
                                        client=client), count)

            def drop_all_but_first(_broker, name, topic=topic):
                if name != f"{topic}-0":
                    delete_topic(broker, name)

            s.run(("security", listener, "produce"), produce, repeat=repeat, prepare=prepare,
                  cleanup=drop_all_but_first)
            first = results.get(("security", listener, "produce"), {})
            first = (first.get("each") or [first])[0]
            if "error" in first:
                continue

            def consume(_broker, _, address=address, client=client, topic=topic, stored=first["acked"]):
                return consumed(rdkafka(["consume", address, f"{topic}-0", stored, "--min-seconds", min_seconds],
                                        client=client), stored)

            s.run(("security", listener, "consume"), consume, repeat=repeat)
            s.drop_topic(f"{topic}-0")
    finally:
        broker.stop()
        shutil.rmtree(broker.data, ignore_errors=True)


# ---------------------------------------------------------------------------------------- report

def cpu_times() -> list[int]:
    """The machine's CPU time so far (/proc/stat's first line): user, nice, system, idle, iowait, irq,
    softirq, steal, in ticks."""
    return [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_info(kafka_version: str, commit: str | None) -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines()
                  if l.startswith("MemTotal"))
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    import confluent_kafka
    revision = subprocess.run(["git", "rev-parse", "--short", commit or "HEAD"], capture_output=True, text=True,
                              cwd=REPO).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "odradek"],
                           capture_output=True, text=True, cwd=REPO).stdout.strip()
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": java[0] if java else "?",
        "kafka": kafka_version,
        "confluent-kafka": f"{confluent_kafka.version()[0]} (librdkafka {confluent_kafka.libversion()[0]})",
        "commit": revision + (" (work tree with uncommitted changes in odradek/)" if dirty and not commit else ""),
    }


def spread(pct: float | None) -> str:
    if pct is None or pct != pct:
        return ""
    return f" ±{pct:.0f}%" if pct >= 10 else f" ±{pct:.1f}%"


def fmt_rate(r: dict | None, out: bool = False) -> str:
    if r is None:
        return "—"
    if "na" in r:
        return f"n/a ({r['na']})"
    if "error" in r:
        return "failed"
    if out:
        return f"{r['mb_per_s_out']:,.0f} MB/s{spread(r.get('spread_out_pct'))}"
    return f"{r['records_per_s']:,.0f} rec/s ({r['mb_per_s']:,.0f} MB/s){spread(r.get('spread_pct'))}"


def fmt_cpu(r: dict | None) -> str:
    if not r or "cpu_s_per_gb" not in r:
        return "—"
    v = r["cpu_s_per_gb"]
    return f"{v:.2f} s" if v < 1 else f"{v:.1f} s" if v < 10 else f"{v:.0f} s"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or a != a or b != b:
        return "—"
    return f"{a / b:.2f}"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("s" if n != 1 else "")


def build_table(res: dict[str, dict], plan: dict) -> tuple[str, list[str]]:
    k, o = res.get("kafka", {}), res.get("odradek", {})
    rows: list[tuple[str, str, str, str, str]] = []

    def rate_row(label, key, out=False):
        rk, ro = k.get(key), o.get(key)
        figure = "mb_per_s_out" if out else "records_per_s"
        vk = rk.get(figure) if rk and figure in rk else None
        vo = ro.get(figure) if ro and figure in ro else None
        cpu = f"{fmt_cpu(rk)} / {fmt_cpu(ro)}"
        rows.append((label, fmt_rate(rk, out) if k else "—", fmt_rate(ro, out) if o else "—", ratio(vo, vk),
                     "—" if cpu == "— / —" else cpu))

    for client, cname in (("rdkafka", "librdkafka"), ("java", "Java perf-test")):
        for size, acks, parts in plan["produce"]:
            rate_row(f"produce, {cname}, {size} B, acks={acks}, {plural(parts, 'partition')}",
                     ("produce", client, size, acks, parts))
    parts, size, acks, _, turn = plan["many_partitions"]
    rate_row(f"produce, librdkafka, {size} B, acks={acks}, {plural(parts, 'partition')} ({turn} records to each "
             "partition in turn)", ("produce", "rdkafka-spread", size, acks, parts))
    for size, parts, _, _ in plan["consume"]:
        for client, cname in (("rdkafka", "librdkafka assign()"), ("rdkafka-group", "librdkafka subscribe(), group"),
                              ("java", "Java perf-test, group")):
            rate_row(f"consume, {cname}, {size} B, {plural(parts, 'partition')}", ("consume", client, size, parts))
    parts, size, _, _, _ = plan["many_partitions"]
    rate_row(f"consume, librdkafka assign(), {size} B, {plural(parts, 'partition')}", ("consume", "rdkafka", size, parts))
    producers, consumers, parts, size, _ = plan["swarm"]
    swarm_key = ("swarm", producers, consumers, size, parts)
    label = f"{producers} producers and {consumers} consumers (one group) at once, {size} B, {plural(parts, 'partition')}"
    rate_row(f"{label}: in (produced)", swarm_key)
    rate_row(f"{label}: out (consumed), MB/s", swarm_key, out=True)
    rate, seconds, size = plan["latency"]
    lk, lo = k.get(("latency",)), o.get(("latency",))
    for q, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        def v(r):
            return r[q] if r and q in r else None

        def f(r):
            if r is None:
                return "—"
            return f"{r[q]:.1f} ms{spread(r.get(q + '_spread_pct'))}" if q in r else "failed"
        rows.append((f"end-to-end latency {name}, {rate:,} msg/s of {size} B", f(lk), f(lo), ratio(v(lo), v(lk)), ""))

    def mem_row(label, key, agg):
        vk = agg(k[key]) if k.get(key) else None
        vo = agg(o[key]) if o.get(key) else None
        f = lambda x: "—" if x is None else f"{x / 1e6:,.0f} MB"
        rows.append((label, f(vk), f(vo), ratio(vo, vk), ""))

    mem_row("broker RSS at idle (after start-up)", "idle_rss", statistics.median)
    mem_row("broker peak RSS under load (VmHWM)", "peak_rss", max)
    sk = statistics.median(k["startup_s"]) if k.get("startup_s") else None
    so = statistics.median(o["startup_s"]) if o.get("startup_s") else None
    f = lambda x: "—" if x is None else f"{x:.2f} s"
    rows.append(("start-up to first acknowledged produce (median)", f(sk), f(so), ratio(so, sk), ""))

    out = ["| workload | Apache Kafka | odradek | odradek/Kafka | broker CPU per GB, Kafka / odradek |",
           "| --- | ---: | ---: | ---: | ---: |"]
    out += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    return "\n".join(out), [r[0] for r in rows]


# configs that name this broker, its listeners or its paths: they differ by nature
IDENTITY_CONFIGS = {"advertised.listeners", "broker.id", "node.id", "listeners", "listener.security.protocol.map",
                    "inter.broker.listener.name", "log.dir", "log.dirs"}


def config_comparison(res: dict[str, dict]) -> str:
    """A sentence on the broker configs both brokers report (DescribeConfigs) and where they differ."""
    k, o = res.get("kafka", {}).get("config"), res.get("odradek", {}).get("config")
    if not k or not o:
        return "not compared in this run (one broker only, or DescribeConfigs failed)"
    common = sorted(set(k) & set(o))
    differ = [f"`{name}` {k[name]} / {o[name]}" for name in common
              if k[name] != o[name] and name not in IDENTITY_CONFIGS]
    return (f"of the {len(common)} broker configs both report through DescribeConfigs, "
            + (f"these differ (Kafka / odradek): {', '.join(differ)}" if differ else
               "none differs but the listeners, ids and paths"))


def build_details(res: dict[str, dict]) -> str:
    lines = ["| broker | workload | client-side result | wall | broker CPU | client CPU | broker CPU per GB |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    hidden = ("broker_cpu_s", "client_cpu_s", "wall_s", "errors", "detail", "cpu_s_per_gb", "each", "runs",
              "spread_pct", "spread_out_pct", "p50_ms_spread_pct", "p99_ms_spread_pct", "p999_ms_spread_pct",
              "max_ms_spread_pct")
    for name in ("kafka", "odradek"):
        for key, summary in res.get(name, {}).items():
            if not isinstance(key, tuple):
                continue
            runs = summary.get("each") or [summary]
            for i, r in enumerate(runs):
                label = " ".join(map(str, key)) + (f" #{i + 1}" if len(runs) > 1 else "")
                shown = {kk: vv for kk, vv in r.items() if kk not in hidden}
                text = ", ".join(f"{kk}={vv:.4g}" if isinstance(vv, float) else f"{kk}={vv}"
                                 for kk, vv in shown.items())
                wall = r.get("wall_s")
                cpu = r.get("broker_cpu_s")
                cpu_s = f"{cpu:.1f} s ({100 * cpu / wall:.0f}%)" if cpu is not None and wall else "—"
                ccpu = r.get("client_cpu_s")
                ccpu_s = f"{ccpu:.1f} s ({100 * ccpu / wall:.0f}%)" if ccpu is not None and wall else "—"
                wall_s = f"{wall:.1f} s" if wall else "—"
                lines.append(f"| {name} | {label} | {text.replace('|', '/')} | {wall_s} | {cpu_s} | {ccpu_s} | "
                             f"{fmt_cpu(r)} |")
    return "\n".join(lines)


NOTES = """\
Notes:
- Settings: Kafka {kafka} in KRaft mode (one process, broker+controller, `-Xmx1G -Xms1G` G1 as
  `kafka-server-start.sh`); odradek as `odradek server`. Both get the same settings where Kafka's sample
  `config/server.properties` departs from Kafka's defaults (internal topics with one replica, as one node
  needs, and `group.initial.rebalance.delay.ms=0`), plus `log.segment.delete.delay.ms=1000` (below),
  and otherwise run with their defaults; checked in the run: {config}. Both brokers of a session run at
  once, and the runs of each row take turns (Kafka, odradek, Kafka, ...), so that a drift in the
  machine's load falls on both; the broker not measured sits idle. Clients run on the same {nproc}
  cores as the brokers, so client CPU competes with broker CPU; the measured consumer of a consume row
  runs on the upper half of them (on 2 cores, the second), which keeps its threads from wandering
  between cores and its rate from wandering with them.
- Each session starts with an untimed warm-up (records of 100 B and 1 KiB produced to and consumed from a
  6-partition topic), so the JVM's JIT is warm when the clock starts.
- Every throughput row is {runs} per broker ({consume_runs} for the consume rows, which are short and
  bound by the client); the median run is shown, ± is half the range of the
  runs relative to the median (all runs are in the details). Each librdkafka run moves at least its
  record count and runs at least {min_seconds:g} s; the Java tools' record counts are sized for about 5 s
  at the faster broker on this machine. Topics are created before and deleted after a run, unmeasured,
  and the next run starts once the broker has removed the deleted topic's files
  (`log.segment.delete.delay.ms=1000` on both; Kafka's default minute held its files through the odradek
  run after it, whose writes then went to memory the virtual machine's host had not backed yet, at
  several times the CPU per byte).
- Broker CPU per GB: user+system time of the broker process while the run's client ran, over the
  record bytes (values) produced (produce rows), consumed (consume rows) or both (the many-clients rows);
  the median over the runs. It is the figure that says what a bigger machine would do.
- librdkafka producer: one Python process, a tight `produce()` loop with no per-record callback,
  `linger.ms=5`, `batch.size=1000000`, no compression; success checked from the end offsets; the time
  includes the final flush. At 100 B records the Python loop itself is a limit (see the CPU columns in the
  details: a broker well below 100% of a core is waiting for the client).
- {partitions:,} partitions: one topic; the producer sends {turn} records to each partition in turn (about
  {turn_kib:,} KiB batches: librdkafka's sticky partitioner would leave most partitions unwritten in a
  short run), the consumer reads every partition with assign(). Before these rows the topic is written
  twice, {writeback} s apart, and read once, untimed (the "prime" rows in the details): Kafka here takes
  two major page faults per partition at its first write to new index files after the kernel first
  wrote them back (10 s of broker CPU for the topic on one machine, 150 s on another, where each fault
  zeroes the sparse file's read-ahead pages), a one-off kept out of the rows.
- Java producer: `kafka-producer-perf-test` (ProducerPerformance) with the Java client's defaults
  (`batch.size=16384`, `linger.ms=5`, idempotence on) except `acks`, `--throughput -1`; the figure is the
  tool's own, over the whole run including the client JVM's warm-up. On 2 cores this client uses 1.5
  cores itself, so these rows measure the Java client far more than either broker.
- The consume rows read a topic written before them, on each broker, in full batches of {fill_kib:,} KiB
  (`batch.size` with `linger.ms=1000`): the same batches on both brokers. With the producer's
  `linger.ms=5` the batch size follows the broker's pace, and a consumer's rate follows the batch size
  (how many whole batches fit in its 1 MiB per partition per Fetch). One fill of 100 B records gave
  414 KB batches on Kafka and 515 KB on odradek, the one batch per Fetch where Kafka's fetch held two.
  The records go to the partitions in turn (`--spread 1`): librdkafka's sticky partitioner, whose turns
  follow the broker's pace, had put 2 M records of 1 KiB into 3 of the 6 partitions on Kafka and 2 on
  odradek, and a consumer's Fetch carries 1 MiB from each partition with records.
- librdkafka consumer: `assign()` to every partition from offset 0, or `subscribe()` in a fresh consumer
  group (auto.offset.reset=earliest), `consume(10000)` batches, `queued.min.messages=1000000` and
  `fetch.queue.backoff.ms=1` (librdkafka's defaults, 100000 and 1000 ms, make a fast consumer pause a
  second whenever its queue is full), timed from the first batch (the group join is left out: it is in
  the details as first_record_s). A partition read to its end is read again from its start until the
  run has its {min_seconds:g} s (`fetch.wait.max.ms=10`, so the turn does not wait for a parked fetch).
- Java consumer: `kafka-consumer-perf-test` (ConsumerPerformance), which joins a consumer group and
  reads every record of the topic (it cannot read in passes; the topic holds enough for about 5 s at
  the faster broker); its fetch-time rate (`fetch.nMsg.sec`, leaving out the group join) is shown.
- Many clients: {producers} librdkafka producer processes (acks=1, {swarm_size} B, queues of 32 MiB) and
  {consumers} consumer processes in one group on a {swarm_partitions}-partition topic; the consumers join
  first, then the producers run {swarm_seconds:g} s. In: acknowledged bytes over the time until the last
  producer's flush returned; out: consumed bytes over the time until the last consumer had its last
  record (every acknowledged record is consumed). 20 client processes share the cores with the broker.
- Latency: a librdkafka producer (`linger.ms=5`, librdkafka's default, `acks=1`) paced at {rate:,} msg/s
  of {size} B for {seconds:g} s (after 2 s not counted), a librdkafka consumer in another process; each record carries
  its send time, so the figures have microsecond resolution (the record timestamp, in ms, agrees:
  see the details). Each percentile is the median of {runs}, ± half their range.
- RSS from /proc/<pid>/status of the broker process (the JVM for Kafka): VmRSS 2 s after start-up,
  VmHWM at the end of each session (the maximum over the sessions). Start-up: from process
  start to the first produce acknowledged with `acks=all` (median over the sessions' starts), odradek
  from its compiled bytecode (`compileall` before the start, as `pip install` does).
"""


def render(res, plan, info, elapsed, errors, cluster_table=None, security_table=None, main_table=True) -> str:
    table, _ = build_table(res, plan)
    rate, seconds, size = plan["latency"]
    producers, consumers, swarm_partitions, swarm_size, swarm_seconds = plan["swarm"]
    parts = [
        f"# odradek vs Apache Kafka — {info['date']}, commit {info['commit']}" + (" (quick)" if info["quick"] else ""),
        "",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['memory']} RAM, {info['os']}; "
        f"Python {info['python']}; {info['java']}; Apache Kafka {info['kafka']}; confluent-kafka {info['confluent-kafka']}.",
        f"Command: `{info['command']}`, {elapsed / 60:.1f} minutes.",
        f"Other work on the machine: {info['load']} (the broker and clients alone make about 2); CPU time "
        f"the virtual machine's host took for others (steal) over the run: {info['steal']}.",
        "",
    ]
    if main_table:  # not when only the cluster or security sessions ran: a table of dashes
        parts += [table, "", NOTES.format(
            runs=plural(plan["repeat"], "run"), consume_runs=plan["consume_repeat"], min_seconds=plan["min_seconds"], kafka=info["kafka"], nproc=info["nproc"],
            config=config_comparison(res), rate=rate, size=size, seconds=seconds,
            partitions=plan["many_partitions"][0], turn=plan["many_partitions"][4],
            turn_kib=plan["many_partitions"][4] * plan["many_partitions"][1] // 1024, writeback=FIRST_WRITEBACK_S,
            fill_kib=plan["fill_batch_bytes"] // 1024,
            producers=producers, consumers=consumers,
            swarm_partitions=swarm_partitions, swarm_size=swarm_size, swarm_seconds=swarm_seconds)]
    if security_table:
        tls = ", ".join(f"{n} {res[n]['tls']}" for n in ("kafka", "odradek") if res.get(n, {}).get("tls"))
        parts += ["Security (bench/security.py): one broker with PLAINTEXT, SSL and SASL_SSL listeners, the same "
                  "PKCS12 key store (P-256 certificate) and `sasl.enabled.mechanisms=PLAIN` for both; the librdkafka "
                  "producer (acks=1) and assign() consumer of bench/rdkafka_client.py, verifying the certificate, "
                  f"topics created over PLAINTEXT; each row the median of {plural(plan['repeat'], 'run')} of at least "
                  f"{plan['min_seconds']:g} s (± half the range); the consume rows read the first produce run's topic; "
                  f"the warm-up also goes over SSL and SASL_SSL. Negotiated: {tls or '—'}. "
                  "Broker CPU per GB is the broker process's user+system time over the records' bytes.",
                  "", security_table, ""]
    if cluster_table:
        parts += ["Clusters (bench/cluster.py: three brokers on this machine, Kafka as three KRaft nodes in combined "
                  "mode, odradek as three brokers and Apache ZooKeeper 3.9 with zookeeper.session.timeout.ms=9000, "
                  "KRaft's broker.session.timeout.ms; the failover row uses an idempotent acks=all producer; one run "
                  "per row, of a fixed record count):",
                  "", cluster_table, ""]
    if errors:
        parts += ["Problems seen in this run:", ""]
        parts += ["```", *[e for e in errors], "```", ""]
    parts += ["Details (each run; broker CPU and client CPU are user+system time of the broker process and of the "
              "client processes, with the share of the run's wall time (200% = both cores)):",
              "", build_details(res), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer records and combinations, one run of at least 2 s a row (about 8 minutes)")
    ap.add_argument("--only", choices=("kafka", "odradek"), help="run one broker only")
    ap.add_argument("--kafka-version", help="Apache Kafka version (default: the newest 4.x on Maven Central)")
    ap.add_argument("--sessions", default="produce-rdkafka,produce-java,consume,scale,cluster,security",
                    help="comma-separated subset of produce-rdkafka,produce-java,consume,scale,cluster,security")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    ap.add_argument("--commit", metavar="REV",
                    help="run odradek as committed at REV (git archive), not the work tree; e.g. HEAD, or an "
                         "older commit to compare before and after a change")
    args = ap.parse_args(argv)
    unknown = [kind for kind in args.sessions.split(",") if kind not in (*SESSIONS, "cluster", "security")]
    if unknown:
        ap.error(f"unknown session(s) {', '.join(unknown)}: expected some of {', '.join(SESSIONS)}, cluster, security")

    started = time.monotonic()
    plan = QUICK if args.quick else FULL
    version = args.kafka_version or kafka_dist.newest_4x()
    libs = kafka_dist.ensure_kafka(version)
    workdir = brokers.make_workdir()
    log(f"work dir {workdir}; Apache Kafka {version}")
    tool_log4j = workdir / "tools-log4j2.properties"
    tool_log4j.write_text(brokers.LOG4J2.format(log=workdir / "tools.log").replace("INFO", "WARN"))

    info = machine_info(version, commit=args.commit)  # the commit as it is when the run starts
    info["load"] = f"1-min load average at the start {Path('/proc/loadavg').read_text().split()[0]}"
    cpu_before = cpu_times()
    src = None
    if args.commit:
        src = brokers.archive_odradek(args.commit, workdir / "src")
    names = [args.only] if args.only else ["kafka", "odradek"]
    results: dict[str, dict] = {n: {} for n in names}
    errors: list[str] = []
    cluster_table = security_table = None
    stores = None
    for kind in args.sessions.split(","):
        if kind == "cluster":
            count, size = plan["cluster"]
            try:
                cluster_table = cluster.table(cluster.compare(names, count, size, libs, src), size)
            except Exception as e:  # noqa: BLE001 - reported with the other problems, the rest of the run stands
                errors.append(f"cluster session failed: {e}")
            continue
        if kind == "security":
            stores = stores or security.make_stores(workdir / "tls")
            for name in names:
                bdir = workdir / f"{name}-security"
                bdir.mkdir()
                broker = (brokers.KafkaBroker(bdir, libs, version) if name == "kafka"
                          else brokers.OdradekBroker(bdir, src=src))
                session_security(broker, plan, results[name], errors, stores)
            count, size, parts, _ = plan["security"]
            security_table = security.table(results, count, size, parts)
            continue
        pairs = []
        for name in names:
            bdir = workdir / f"{name}-{kind}"
            bdir.mkdir()
            broker = (brokers.KafkaBroker(bdir, libs, version) if name == "kafka" else brokers.OdradekBroker(bdir, src=src))
            pairs.append((broker, results[name]))
        run_session(kind, pairs, plan, errors, libs, tool_log4j)

    elapsed = time.monotonic() - started
    info["load"] += f", at the end {Path('/proc/loadavg').read_text().split()[0]}"
    spent = [after - before for before, after in zip(cpu_before, cpu_times())]
    # time the virtual machine's host gave to others while this one had work: it slows both brokers
    # and their clients unevenly, and is what widens a row's spread
    info["steal"] = f"{spent[7] / max(sum(spent), 1):.0%}"
    info["date"] = datetime.date.today().isoformat()
    info["quick"] = args.quick
    info["command"] = "make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else "")
    main_table = any(k in SESSIONS for k in args.sessions.split(","))
    report = render(results, plan, info, elapsed, errors, cluster_table, security_table, main_table)
    print(report)
    if not args.no_write:
        out_dir = BENCH / "results"
        out_dir.mkdir(exist_ok=True)
        suffix = "-quick" if args.quick else ""
        suffix += f"-{args.only}" if args.only else ""
        suffix += "-dirty" if "uncommitted" in info["commit"] else ""
        if args.sessions != ap.get_default("sessions"):  # a partial run does not overwrite a full one
            suffix += "-" + args.sessions.replace(",", "-")
        path = out_dir / f"{info['date']}-{info['commit'].split()[0]}{suffix}.md"
        path.write_text(report)
        log(f"wrote {path.relative_to(REPO)}")
    log(f"total {elapsed / 60:.1f} minutes; broker logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
