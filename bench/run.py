"""odradek against Apache Kafka on the same machine, same run, same clients.

    python bench/run.py [--quick] [--only kafka|odradek] [--kafka-version 4.x.y] [--commit REV]

Fetches the newest Apache Kafka 4.x from Maven Central (cached in .cache/bench), then runs the
workloads in three sessions; each session starts a fresh broker, Kafka first and then odradek, so
the two alternate and never run at the same time:

  1. produce throughput with librdkafka (confluent-kafka): record size x acks x partitions
  2. produce throughput with kafka-producer-perf-test (the Java client): the same matrix
  3. consume throughput (confluent-kafka with assign(), kafka-consumer-perf-test with a group)
     and end-to-end latency at a fixed rate
  4. three-broker clusters (bench/cluster.py): produce with replication factor 3, acks=1 against
     acks=all, and the time from kill -9 of a leader to the next acknowledged record
  5. security (bench/security.py): produce and consume throughput over PLAINTEXT, SSL and SASL_SSL
     (PLAIN) listeners of one broker, the same key store and settings for both brokers

Sessions 1-3 also measure start-up (process start to the first acknowledged produce), idle RSS
and peak RSS (VmHWM). The table goes to stdout and to bench/results/<date>-<commit>.md.
Benchmarks report numbers; they never fail a build on speed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
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
    "produce": [(size, acks, parts) for size in (100, 1024) for acks in ("1", "all") for parts in (1, 6)],
    "count": {("rdkafka", 100): 2_000_000, ("rdkafka", 1024): 500_000,
              ("java", 100): 1_000_000, ("java", 1024): 300_000},
    "warmup": (1_000_000, 200_000),  # 100 B and 1 KiB records produced and consumed, not timed
    "consume": [(100, 1, 2_000_000), (1024, 6, 500_000)],
    "latency": (10_000, 10.0, 1024),  # rate, seconds, record size
    "repeat": 2,  # librdkafka runs (a few seconds each): the best of this many
    "cluster": (300_000, 1024),  # records per produce row, record size (bench/cluster.py)
    # records per row, record size, partitions, warm-up records, runs per row (the best counts)
    "security": (500_000, 1024, 6, 200_000, 2),
}
QUICK = {
    "produce": [(100, "1", 1), (1024, "all", 6)],
    "count": {("rdkafka", 100): 500_000, ("rdkafka", 1024): 150_000,
              ("java", 100): 300_000, ("java", 1024): 100_000},
    "warmup": (300_000, 100_000),
    "consume": [(100, 1, 500_000)],
    "latency": (10_000, 4.0, 1024),
    "repeat": 1,
    "cluster": (100_000, 1024),
    "security": (300_000, 1024, 6, 100_000, 2),  # rows of a second or less are mostly noise: best of 2
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------- helpers

def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)
    # wait until every partition has a leader in the metadata
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md and md.error is None and len(md.partitions) == partitions and all(
                p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.05)


def count_records(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "odradek-bench-count"})
    try:
        md = c.list_topics(topic, timeout=10)
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in md.topics[topic].partitions)
    finally:
        c.close()


def rdkafka(args: list, timeout: float = 240, client: dict | None = None) -> dict:
    """bench/rdkafka_client.py; `client`: extra librdkafka settings (a listener's security settings)."""
    env = dict(os.environ, RDKAFKA_CLIENT_CONFIG=json.dumps(client)) if client else None
    try:
        r = subprocess.run([sys.executable, str(RDKAFKA_CLIENT), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"confluent-kafka client timed out after {timeout:.0f} s") from None
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"confluent-kafka client failed (exit {r.returncode}): {r.stderr.strip()[-400:]}")
    return json.loads(lines[-1])


class Session:
    """One broker process with per-workload broker CPU accounting."""

    def __init__(self, broker: brokers.Broker, results: dict, errors: list):
        self.broker = broker
        self.results = results
        self.errors = errors
        self.dead = False

    def run(self, key: tuple, fn, repeat: int = 1) -> None:
        """Run `fn(i)` `repeat` times; keep the fastest (other work on the machine only slows a run down)."""
        runs = []
        for i in range(repeat):
            self._run_once(key, lambda: fn(i) if repeat > 1 else fn())
            runs.append(self.results[key])
            if "error" in runs[-1]:
                return
        if repeat > 1:
            best = max(runs, key=lambda r: r.get("records_per_s", 0))
            best = dict(best, runs=[round(r.get("records_per_s", 0)) for r in runs])
            self.results[key] = best

    def _run_once(self, key: tuple, fn) -> None:
        name = self.broker.name
        if self.dead:
            self.results[key] = {"error": "broker died earlier"}
            return
        log(f"{name}: {' '.join(map(str, key))}")
        cpu0, t0 = self.broker.cpu_seconds(), time.monotonic()
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            res = fn()
        except Exception as e:  # report, go on with the next workload
            res = {"error": str(e)[:600]}
            self.errors.append(f"{name} {' '.join(map(str, key))}: {str(e)[:600]}")
        wall = time.monotonic() - t0
        if not self.broker.alive():
            self.dead = True
            tail = self.broker.log_tail(40)
            self.errors.append(f"{name} died during {' '.join(map(str, key))}; log tail:\n{tail}")
            res.setdefault("error", "broker died")
        else:
            res["broker_cpu_s"] = self.broker.cpu_seconds() - cpu0
            kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the client processes, once they exited
            res["client_cpu_s"] = (kids.ru_utime + kids.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
            res["wall_s"] = wall
        if res.get("errors"):
            self.errors.append(f"{name} {' '.join(map(str, key))}: client reported {res['errors']}")
        self.results[key] = res
        summary = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in res.items() if k != "errors")
        log(f"{name}:   {summary}")


# ------------------------------------------------------------------------------------- sessions

def session_produce(s: Session, plan: dict, client: str, libs: Path, log4j: Path) -> None:
    b = s.broker
    for size, acks, parts in plan["produce"]:
        count = plan["count"][(client, size)]
        base = f"produce-{client}-{size}b-acks{acks}-p{parts}"

        def work(i=0, base=base, size=size, acks=acks, parts=parts, count=count):
            topic = f"{base}-{i}"
            create_topic(b.bootstrap, topic, parts)
            if client == "rdkafka":
                res = rdkafka(["produce", b.bootstrap, topic, count, size, acks])
                if res["acked"] != count:
                    raise RuntimeError(f"{res['acked']} of {count} records acknowledged; client errors {res['errors']}")
                return res
            res = java_tools.producer_perf(libs, log4j, b.bootstrap, topic, count, size, acks)
            stored = count_records(b.bootstrap, topic)
            if stored != count:
                raise RuntimeError(f"{stored} of {count} records stored; tool said {res}")
            return res

        s.run(("produce", client, size, acks, parts), work, repeat=plan["repeat"] if client == "rdkafka" else 1)


def session_consume(s: Session, plan: dict, libs: Path, log4j: Path) -> None:
    b = s.broker
    for size, parts, count in plan["consume"]:
        topic = f"consume-{size}b-p{parts}"

        def fill(topic=topic, size=size, parts=parts, count=count):
            create_topic(b.bootstrap, topic, parts)
            res = rdkafka(["produce", b.bootstrap, topic, count, size, "1"])
            if res["acked"] != count:
                raise RuntimeError(f"filling {topic}: {res['acked']} of {count} acknowledged")
            return {"records": count}

        s.run(("fill", size, parts), fill)

        def consume_rd(i=0, topic=topic, count=count):
            res = rdkafka(["consume", b.bootstrap, topic, count])
            if res["records"] != count:
                raise RuntimeError(f"consumed {res['records']} of {count}; client errors {res['errors']}")
            return res

        s.run(("consume", "rdkafka", size, parts), consume_rd, repeat=plan["repeat"])

        def consume_java(topic=topic, count=count):
            try:
                return java_tools.consumer_perf(libs, log4j, b.bootstrap, topic, count, f"bench-{topic}",
                                                timeout=90)
            except java_tools.ToolFailed as e:
                if b.name == "odradek":
                    return {"na": "needs consumer groups", "detail": str(e)[:400]}
                raise

        s.run(("consume", "java", size, parts), consume_java)

    rate, seconds, size = plan["latency"]

    def lat():
        create_topic(b.bootstrap, "latency", 1)
        return rdkafka(["latency", b.bootstrap, "latency", rate, seconds, size], timeout=120)

    s.run(("latency",), lat)


def warmup(s: Session, plan: dict) -> None:
    """Produce and consume some records first: the JVM's JIT (and odradek's caches) start warm."""
    b = s.broker
    n_small, n_large = plan["warmup"]

    def work():
        create_topic(b.bootstrap, "warmup", 6)
        rdkafka(["produce", b.bootstrap, "warmup", n_small, 100, "1"])
        rdkafka(["produce", b.bootstrap, "warmup", n_large, 1024, "all"])
        return rdkafka(["consume", b.bootstrap, "warmup", n_small + n_large])

    s.run(("warm-up",), work)


def run_session(kind: str, broker: brokers.Broker, plan: dict, results: dict, errors: list,
                libs: Path, log4j: Path) -> None:
    log(f"{broker.name}: starting for the {kind} session")
    try:
        broker.start()
    except Exception as e:
        errors.append(f"{broker.name} failed to start ({kind}): {e}\n{broker.log_tail(30)}")
        log(f"{broker.name}: failed to start: {e}")
        broker.stop()
        return
    log(f"{broker.name}: port open after {broker.port_open_s:.2f} s, first produce acknowledged after "
        f"{broker.startup_s:.2f} s")
    results.setdefault("startup_s", []).append(broker.startup_s)
    time.sleep(2.0)
    results.setdefault("idle_rss", []).append(broker.memory()["VmRSS"])
    s = Session(broker, results, errors)
    try:
        warmup(s, plan)
        if kind == "produce-rdkafka":
            session_produce(s, plan, "rdkafka", libs, log4j)
        elif kind == "produce-java":
            session_produce(s, plan, "java", libs, log4j)
        else:
            session_consume(s, plan, libs, log4j)
        if broker.alive():
            results.setdefault("peak_rss", []).append(broker.memory()["VmHWM"])
    finally:
        broker.stop()
        shutil.rmtree(broker.data, ignore_errors=True)  # keep the logs, not gigabytes of records


def session_security(broker: brokers.Broker, plan: dict, results: dict, errors: list,
                     stores: security.Stores) -> None:
    """One broker with PLAINTEXT, SSL and SASL_SSL listeners: per listener, produce 1 KiB records
    (acks=1) and consume them back with librdkafka. Topics are created over PLAINTEXT: only the
    timed clients use the listener under test. Start-up and RSS are not counted with the other
    sessions' (a different configuration)."""
    count, size, parts, n_warm, repeat = plan["security"]
    broker.secure(list(security.LISTENERS[1:]), security.broker_config(stores))
    log(f"{broker.name}: starting for the security session")
    try:
        broker.start()
    except Exception as e:
        errors.append(f"{broker.name} failed to start (security): {e}\n{broker.log_tail(30)}")
        log(f"{broker.name}: failed to start: {e}")
        broker.stop()
        return
    s = Session(broker, results, errors)
    clients = {listener: security.client_config(listener, stores) for listener in security.LISTENERS}
    try:
        results["tls"] = security.negotiated(broker.address("SSL"), stores)
        log(f"{broker.name}: TLS {results['tls']}")

        def warm():
            """Every path once before the clock starts: produce over PLAINTEXT and SSL, consume over
            SASL_SSL (Kafka's TLS code, as its other code, is interpreted until the JIT compiles it)."""
            create_topic(broker.bootstrap, "security-warmup", parts)
            for listener in ("PLAINTEXT", "SSL"):
                rdkafka(["produce", broker.address(listener), "security-warmup", n_warm, size, "1"],
                        client=clients[listener])
            return rdkafka(["consume", broker.address("SASL_SSL"), "security-warmup", 2 * n_warm],
                           client=clients["SASL_SSL"])

        s.run(("security", "warm-up"), warm)
        for listener in security.LISTENERS:
            address, client = broker.address(listener), clients[listener]
            topic = f"security-{listener.lower()}"

            def produce(i=0, address=address, client=client, topic=topic):
                create_topic(broker.bootstrap, f"{topic}-{i}", parts)
                res = rdkafka(["produce", address, f"{topic}-{i}", count, size, "1"], client=client)
                if res["acked"] != count:
                    raise RuntimeError(f"{res['acked']} of {count} records acknowledged; client errors {res['errors']}")
                return res

            s.run(("security", listener, "produce"), produce, repeat=repeat)

            def consume(i=0, address=address, client=client, topic=topic):
                res = rdkafka(["consume", address, f"{topic}-0", count], client=client)
                if res["records"] != count:
                    raise RuntimeError(f"consumed {res['records']} of {count}; client errors {res['errors']}")
                return res

            s.run(("security", listener, "consume"), consume, repeat=repeat)
    finally:
        broker.stop()
        shutil.rmtree(broker.data, ignore_errors=True)


# ---------------------------------------------------------------------------------------- report

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


def fmt_rate(r: dict | None) -> str:
    if r is None:
        return "—"
    if "na" in r:
        return f"n/a ({r['na']})"
    if "error" in r:
        return "failed"
    return f"{r['records_per_s']:,.0f} rec/s ({r['mb_per_s']:,.0f} MB/s)"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or a != a or b != b:
        return "—"
    return f"{a / b:.2f}"


def build_table(res: dict[str, dict], plan: dict) -> tuple[str, list[str]]:
    k, o = res.get("kafka", {}), res.get("odradek", {})
    rows: list[tuple[str, str, str, str]] = []

    def rate_row(label, key):
        rk, ro = k.get(key), o.get(key)
        vk = rk.get("records_per_s") if rk and "records_per_s" in rk else None
        vo = ro.get("records_per_s") if ro and "records_per_s" in ro else None
        rows.append((label, fmt_rate(rk) if k else "—", fmt_rate(ro) if o else "—", ratio(vo, vk)))

    for client, cname in (("rdkafka", "librdkafka"), ("java", "Java perf-test")):
        for size, acks, parts in plan["produce"]:
            rate_row(f"produce, {cname}, {size} B, acks={acks}, {parts} partition{'s' if parts > 1 else ''}",
                     ("produce", client, size, acks, parts))
    for size, parts, _ in plan["consume"]:
        for client, cname in (("rdkafka", "librdkafka assign()"), ("java", "Java perf-test, group")):
            rate_row(f"consume, {cname}, {size} B, {parts} partition{'s' if parts > 1 else ''}",
                     ("consume", client, size, parts))
    rate, seconds, size = plan["latency"]
    lk, lo = k.get(("latency",)), o.get(("latency",))
    for q, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        def v(r):
            return r[q] if r and q in r else None
        def f(r):
            if r is None:
                return "—"
            return f"{r[q]:.1f} ms" if q in r else "failed"
        rows.append((f"end-to-end latency {name}, {rate:,} msg/s of {size} B", f(lk), f(lo), ratio(v(lo), v(lk))))

    def mem_row(label, key, agg):
        vk = agg(k[key]) if k.get(key) else None
        vo = agg(o[key]) if o.get(key) else None
        f = lambda x: "—" if x is None else f"{x / 1e6:,.0f} MB"
        rows.append((label, f(vk), f(vo), ratio(vo, vk)))

    mem_row("broker RSS at idle (after start-up)", "idle_rss", statistics.median)
    mem_row("broker peak RSS under load (VmHWM)", "peak_rss", max)
    sk = statistics.median(k["startup_s"]) if k.get("startup_s") else None
    so = statistics.median(o["startup_s"]) if o.get("startup_s") else None
    f = lambda x: "—" if x is None else f"{x:.2f} s"
    rows.append(("start-up to first acknowledged produce (median)", f(sk), f(so), ratio(so, sk)))

    out = ["| workload | Apache Kafka | odradek | odradek/Kafka |", "| --- | ---: | ---: | ---: |"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out), [r[0] for r in rows]


def build_details(res: dict[str, dict]) -> str:
    lines = ["| broker | workload | client-side result | wall | broker CPU | client CPU |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for name in ("kafka", "odradek"):
        for key, r in res.get(name, {}).items():
            if not isinstance(key, tuple):
                continue
            shown = {kk: vv for kk, vv in r.items()
                     if kk not in ("broker_cpu_s", "client_cpu_s", "wall_s", "errors", "detail")}
            text = ", ".join(f"{kk}={vv:.4g}" if isinstance(vv, float) else f"{kk}={vv}" for kk, vv in shown.items())
            wall = r.get("wall_s")
            cpu = r.get("broker_cpu_s")
            cpu_s = f"{cpu:.1f} s ({100 * cpu / wall:.0f}%)" if cpu is not None and wall else "—"
            ccpu = r.get("client_cpu_s")
            ccpu_s = f"{ccpu:.1f} s ({100 * ccpu / wall:.0f}%)" if ccpu is not None and wall else "—"
            lines.append(f"| {name} | {' '.join(map(str, key))} | {text.replace('|', '/')} | "
                         f"{wall:.1f} s | {cpu_s} | {ccpu_s} |" if wall else
                         f"| {name} | {' '.join(map(str, key))} | {text.replace('|', '/')} | — | — | — |")
    return "\n".join(lines)


NOTES = """\
Notes:
- Each broker runs with its defaults: Kafka {kafka} in KRaft mode (one process, broker+controller,
  `-Xmx1G -Xms1G` G1 as `kafka-server-start.sh`, internal topics with one replica and
  `group.initial.rebalance.delay.ms=0` as in Kafka's own `config/server.properties`); odradek as
  `odradek server` with only `listeners` and `log.dirs` set. One broker runs at a time; clients run on the
  same {nproc} cores as the broker, so client CPU competes with broker CPU.
- Each session starts with an untimed warm-up (records of 100 B and 1 KiB produced to and consumed from a
  6-partition topic), so the JVM's JIT is warm when the clock starts.
- Run-to-run spread on a shared 2-core machine is large (±30% seen); the librdkafka produce and consume
  rows are the best of {repeat} runs (all runs are in the details), the Java rows a single run.
- librdkafka producer: one Python process, a tight `produce()` loop with no per-record callback,
  `linger.ms=5`, `batch.size=1000000`, no compression; success checked from the end offsets. At 100 B
  records the Python loop itself is a limit (see the CPU columns in the details: a broker well below
  100% of a core is waiting for the client).
- Java producer: `kafka-producer-perf-test` (ProducerPerformance) with the Java client's defaults
  (`batch.size=16384`, `linger.ms=5`, idempotence on) except `acks`, `--throughput -1`; the figure is the
  tool's own, over the whole run including the client JVM's warm-up. On 2 cores this client uses 1.5
  cores itself, so these rows measure the Java client far more than either broker.
- librdkafka consumer: `assign()` to every partition from offset 0, `consume(10000)` batches,
  `queued.min.messages=1000000` and `fetch.queue.backoff.ms=1` (librdkafka's defaults, 100000 and
  1000 ms, make a fast consumer pause a second whenever its queue is full); timed from the first batch.
- Java consumer: `kafka-consumer-perf-test` (ConsumerPerformance), which joins a consumer group; its
  fetch-time rate (`fetch.nMsg.sec`, leaving out the group join) is shown.
- Latency: a librdkafka producer (`linger.ms=5`, librdkafka's default, `acks=1`) paced at {rate:,} msg/s
  of {size} B for {seconds:g} s (after 2 s not counted), a librdkafka consumer in another process; each record carries
  its send time, so the figures have microsecond resolution (the record timestamp, in ms, agrees:
  see the details).
- RSS from /proc/<pid>/status of the broker process (the JVM for Kafka): VmRSS 2 s after start-up,
  VmHWM at the end of each session (the maximum over the three sessions). Start-up: from process
  start to the first produce acknowledged with `acks=all` (median over the three starts).
"""


def render(res, plan, info, elapsed, errors, cluster_table=None, security_table=None, main_table=True) -> str:
    table, _ = build_table(res, plan)
    rate, seconds, size = plan["latency"]
    parts = [
        f"# odradek vs Apache Kafka — {info['date']}, commit {info['commit']}" + (" (quick)" if info["quick"] else ""),
        "",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['memory']} RAM, {info['os']}; "
        f"Python {info['python']}; {info['java']}; Apache Kafka {info['kafka']}; confluent-kafka {info['confluent-kafka']}.",
        f"Command: `{info['command']}`, {elapsed / 60:.1f} minutes.",
        f"Other work on the machine: {info['load']} (the broker and clients alone make about 2).",
        "",
    ]
    if main_table:  # not when only the cluster or security sessions ran: a table of dashes
        parts += [table, "", NOTES.format(repeat=plan["repeat"], kafka=info["kafka"], nproc=info["nproc"], rate=rate,
                                          size=size, seconds=seconds)]
    if security_table:
        tls = ", ".join(f"{n} {res[n]['tls']}" for n in ("kafka", "odradek") if res.get(n, {}).get("tls"))
        parts += ["Security (bench/security.py): one broker with PLAINTEXT, SSL and SASL_SSL listeners, the same "
                  "PKCS12 key store (P-256 certificate) and `sasl.enabled.mechanisms=PLAIN` for both; the librdkafka "
                  "producer (acks=1) and assign() consumer of bench/rdkafka_client.py, verifying the certificate, "
                  "topics created over PLAINTEXT; the best of "
                  f"{plan['security'][4]} runs; the warm-up also goes over SSL and SASL_SSL. Negotiated: {tls or '—'}. "
                  "Broker CPU per GB is the broker process's user+system time over the records' bytes.",
                  "", security_table, ""]
    if cluster_table:
        parts += ["Clusters (bench/cluster.py: three brokers on this machine, Kafka as three KRaft nodes in combined "
                  "mode, odradek as three brokers and Apache ZooKeeper 3.9 with zookeeper.session.timeout.ms=9000, "
                  "KRaft's broker.session.timeout.ms; the failover row uses an idempotent acks=all producer):",
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
    ap.add_argument("--quick", action="store_true", help="fewer records and combinations (about 4 minutes)")
    ap.add_argument("--only", choices=("kafka", "odradek"), help="run one broker only")
    ap.add_argument("--kafka-version", help="Apache Kafka version (default: the newest 4.x on Maven Central)")
    ap.add_argument("--sessions", default="produce-rdkafka,produce-java,consume,cluster,security",
                    help="comma-separated subset of produce-rdkafka,produce-java,consume,cluster,security")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    ap.add_argument("--commit", metavar="REV",
                    help="run odradek as committed at REV (git archive), not the work tree; e.g. HEAD, or an "
                         "older commit to compare before and after a change")
    args = ap.parse_args(argv)

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
    src = None
    if args.commit:
        src = workdir / "src"
        src.mkdir()
        subprocess.run(f"git archive {shlex.quote(args.commit)} odradek | tar -x -C {src}", shell=True, check=True, cwd=REPO)
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
            count, size, parts, _, _ = plan["security"]
            security_table = security.table(results, count, size, parts)
            continue
        for name in names:
            bdir = workdir / f"{name}-{kind}"
            bdir.mkdir()
            broker = (brokers.KafkaBroker(bdir, libs, version) if name == "kafka" else brokers.OdradekBroker(bdir, src=src))
            run_session(kind, broker, plan, results[name], errors, libs, tool_log4j)

    elapsed = time.monotonic() - started
    info["load"] += f", at the end {Path('/proc/loadavg').read_text().split()[0]}"
    info["date"] = datetime.date.today().isoformat()
    info["quick"] = args.quick
    info["command"] = "make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else "")
    main_table = any(k in ("produce-rdkafka", "produce-java", "consume") for k in args.sessions.split(","))
    report = render(results, plan, info, elapsed, errors, cluster_table, security_table, main_table)
    print(report)
    if not args.no_write:
        out_dir = BENCH / "results"
        out_dir.mkdir(exist_ok=True)
        suffix = "-quick" if args.quick else ""
        suffix += f"-{args.only}" if args.only else ""
        suffix += "-dirty" if "uncommitted" in info["commit"] else ""
        path = out_dir / f"{info['date']}-{info['commit'].split()[0]}{suffix}.md"
        path.write_text(report)
        log(f"wrote {path.relative_to(REPO)}")
    log(f"total {elapsed / 60:.1f} minutes; broker logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
