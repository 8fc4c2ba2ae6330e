"""Several odradek brokers on one host: how throughput grows with broker processes (issue 16).

    .venv/bin/python bench/scaling.py [--layouts 1x1,2x1] [--runs 3] [--seconds 6] [--out FILE]

One odradek process runs one event loop on one core. The way to use more cores is several brokers
per host in cluster mode, which `odradek server --workers N` runs from one config: each worker
with its own broker.id, log dir and port, all registered in one Apache ZooKeeper, all with
broker.rack set to the host. This measures that on this machine.

A layout `NxR` is N brokers and a topic of --partitions partitions with replication factor R
(placed by the controller, so leaders spread over the brokers). Each run of a layout starts
ZooKeeper 3.9.5 (the jars `odradek zookeeper` uses, cached under .cache/zookeeper) and N brokers
afresh, produces for a short untimed warm-up, then measures:

- produce: --producers librdkafka processes (acks=1, --size byte records, each producer sending to
  every partition in turn, 256 records at a time) start together and produce for --seconds, then
  flush. Acknowledged records are the growth of the partitions' high watermarks; the time runs
  from the start signal to the last producer's flush returning.
- consume: --consumers librdkafka processes, each assign()ed a contiguous block of partitions (so
  each reads from every broker), read from offset 0 for --seconds, going back to the start of a
  partition read to its end. Bytes are counted over the same window.

For each phase: CPU seconds of every broker, of ZooKeeper and of the client processes (from
/proc/<pid>/stat and getrusage), and of the whole machine (/proc/stat), so that a figure says
what held it back: a broker at one core, or clients and brokers sharing the machine's cores.
Runs go round the layouts in turn (1x1, 2x1, 1x1, 2x1, ...) so that other load on the machine
falls on every layout alike; a layout's figure is the median of its runs, with the lowest and
highest. Writes a Markdown report; never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import brokers  # noqa: E402
import rdkafka_client  # noqa: E402
from cluster import wait_port  # noqa: E402
from odradek.cli.zookeeper import ZOOKEEPER_VERSION, ensure_installed, server_command, write_config  # noqa: E402

TOPIC = "scaling"
RECORDS_PER_TURN = 256  # records a producer sends to one partition before going on to the next


def log(message: str) -> None:
    print(f"[scaling] {message}", file=sys.stderr, flush=True)


# --- the processes on this host ---------------------------------------------------------------


class HostCluster:
    """Apache ZooKeeper and `odradek server --workers N` on this host, as an operator runs several
    brokers per machine: broker.id 1..N on consecutive ports, a log dir each, broker.rack = the host
    (what --workers gives each worker)."""

    def __init__(self, work: Path, count: int, src: Path) -> None:
        self.work = work
        self.count = count
        self.src = src  # the directory holding the odradek package to run
        self.ports = consecutive_free_ports(count)
        self.zookeeper: subprocess.Popen | None = None
        self.supervisor: subprocess.Popen | None = None
        self.brokers: dict[int, int] = {}  # broker id -> pid of its worker process

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> None:
        lib = ensure_installed(REPO / ".cache" / "zookeeper", announce=log)
        zk_port = brokers.free_port()
        config = write_config(self.work / "zoo.cfg", {"dataDir": str(self.work / "zk"), "clientPort": str(zk_port)})
        with open(self.work / "zookeeper.log", "ab") as out:
            self.zookeeper = subprocess.Popen(server_command(config, lib, log_level="warn"), stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(zk_port, self.zookeeper, "ZooKeeper", self.work / "zookeeper.log")
        env = dict(os.environ, PYTHONPATH=str(self.src), HYPOTHESIS_STORAGE_DIRECTORY=str(brokers.HYPOTHESIS_DIR))
        command = [sys.executable, "-m", "odradek", "server", "--workers", str(self.count),
                   "--override", "broker.id=1",
                   "--override", f"zookeeper.connect=127.0.0.1:{zk_port}",
                   "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.ports[0]}",
                   "--override", f"log.dirs={self.work / 'data'}",
                   *(arg for key, value in brokers.SHARED_CONFIG.items() for arg in ("--override", f"{key}={value}"))]
        with open(self.work / "supervisor.log", "ab") as out:
            self.supervisor = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.work,
                                               start_new_session=True)
        for port in self.ports:
            wait_port(port, self.supervisor, "odradek server --workers", self.work / "supervisor.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if len(AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=5).brokers) == self.count:
                    self.brokers = workers_of(self.supervisor.pid)
                    assert sorted(self.brokers) == list(range(1, self.count + 1)), self.brokers
                    return
            except Exception:  # noqa: BLE001 - not registered yet
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the {self.count} brokers did not all register in ZooKeeper")

    def stop(self) -> None:
        """The supervisor first (it stops its workers one at a time, each with a controlled
        shutdown, which needs ZooKeeper), then ZooKeeper."""
        for process in (self.supervisor, self.zookeeper):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                _wait_or_kill(process, timeout_s=300)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system, every thread) so far: 'broker-<id>' for each broker, 'zookeeper',
        and 'supervisor' (it forwards the workers' log lines; counted with the machine's other work)."""
        out = {f"broker-{broker_id}": brokers.proc_cpu_seconds(pid) for broker_id, pid in self.brokers.items()}
        assert self.zookeeper is not None and self.supervisor is not None
        out["zookeeper"] = brokers.proc_cpu_seconds(self.zookeeper.pid)
        out["supervisor"] = brokers.proc_cpu_seconds(self.supervisor.pid)
        return out

    def memory(self) -> dict[str, dict[str, int]]:
        return {f"broker-{broker_id}": brokers.proc_status(pid) for broker_id, pid in self.brokers.items()}


def consecutive_free_ports(count: int) -> list[int]:
    """`count` consecutive free ports: --workers gives worker i the first port + i."""
    for _ in range(100):
        first = brokers.free_port()
        ports = list(range(first, first + count))
        try:
            for port in ports[1:]:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return ports
    raise RuntimeError(f"no {count} consecutive free ports")


def workers_of(supervisor: int) -> dict[int, int]:
    """broker id -> pid of each worker process of the supervisor `supervisor`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != supervisor:
                continue
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ids = [int(argument.partition(b"=")[2]) for argument in arguments if argument.startswith(b"broker.id=")]
        if ids:
            found[ids[-1]] = int(entry.name)  # the last --override wins: the worker's own id
    return found


def _wait_or_kill(process: subprocess.Popen, timeout_s: float = 60) -> None:
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def machine_cpu() -> dict[str, float]:
    """The machine's CPU seconds so far from /proc/stat: busy (user, nice, system, irq, softirq),
    idle (idle, iowait) and steal (taken by the hypervisor for other guests)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return {"busy": (user + nice + system + irq + softirq) / ticks, "idle": (idle + iowait) / ticks, "steal": steal / ticks}


def create_topic(bootstrap: str, partitions: int, replication_factor: int) -> dict[int, int]:
    """Create the topic; once every partition answers ListOffsets from its leader, {broker id: partitions led}."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, partitions, replication_factor)])[TOPIC].result(60)
    high_watermarks(bootstrap)
    led: dict[int, int] = {}
    for partition in admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions.values():
        led[partition.leader] = led.get(partition.leader, 0) + 1
    return dict(sorted(led.items()))


def high_watermarks(bootstrap: str, timeout_s: float = 30.0) -> dict[int, int]:
    """Partition -> high watermark; asks again while a partition's leader has not taken it up yet."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "scaling-offsets"})
    try:
        partitions = sorted(consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions)
        deadline = time.monotonic() + timeout_s
        found: dict[int, int] = {}
        while True:
            for p in partitions:
                if p in found:
                    continue
                try:
                    found[p] = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
                except Exception:  # noqa: BLE001 - not led yet
                    if time.monotonic() > deadline:
                        raise
            if len(found) == len(partitions):
                return found
            time.sleep(0.1)
    finally:
        consumer.close()


def settled_total(bootstrap: str, timeout_s: float = 30.0) -> int:
    """The summed high watermarks once they stop moving (with replicas they trail acks=1 briefly)."""
    last = sum(high_watermarks(bootstrap).values())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = sum(high_watermarks(bootstrap).values())
        if now == last:
            return now
        last = now
    return last


# --- the client processes ---------------------------------------------------------------------


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process, librdkafka's included
    return usage.ru_utime + usage.ru_stime


def _producer(bootstrap: str, size: int, seconds: float, ready, go, out) -> None:
    errors: list[str] = []
    config = {**rdkafka_client.PRODUCER_CONFIG, "queue.buffering.max.messages": 100_000,
              "queue.buffering.max.kbytes": 65_536}
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", **config,
                  "error_cb": lambda e: len(errors) < 5 and errors.append(str(e))})
    partitions = sorted(p.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions)
    value = os.urandom(size)
    produce = p.produce
    ready.release()
    go.wait()
    cpu0 = _own_cpu_seconds()
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        for partition in partitions:
            for _ in range(RECORDS_PER_TURN):
                try:
                    produce(TOPIC, value, partition=partition)
                except BufferError:
                    while True:  # the queue is full: serve delivery reports until the record fits
                        p.poll(0.005)
                        try:
                            produce(TOPIC, value, partition=partition)
                            break
                        except BufferError:
                            continue
            sent += RECORDS_PER_TURN
    left = p.flush(120)
    out.put({"sent": sent, "unflushed": left, "done": time.monotonic(), "cpu_s": _own_cpu_seconds() - cpu0,
             "errors": errors})


def _consumer(bootstrap: str, partitions: list[int], seconds: float, ready, go, out) -> None:
    errors: list[str] = []
    c = Consumer({"bootstrap.servers": bootstrap, **rdkafka_client.CONSUMER_CONFIG, "enable.partition.eof": True,
                  "fetch.wait.max.ms": 10, "error_cb": lambda e: len(errors) < 5 and errors.append(str(e))})
    c.list_topics(TOPIC, timeout=10)
    ready.release()
    go.wait()
    cpu0 = _own_cpu_seconds()
    deadline = time.monotonic() + seconds
    c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in partitions])
    records = nbytes = passes = 0
    while time.monotonic() < deadline:
        for m in c.consume(num_messages=10_000, timeout=0.01):
            error = m.error()
            if error is None:
                records += 1
                nbytes += len(m.value())
            elif error.code() == KafkaError._PARTITION_EOF:
                if m.offset() > 0:  # read to its end: again from the start, while time is left
                    c.seek(TopicPartition(TOPIC, m.partition(), OFFSET_BEGINNING))
                    passes += 1
            elif len(errors) < 5:
                errors.append(str(error))
    done = time.monotonic()
    cpu_s = _own_cpu_seconds() - cpu0
    c.close()
    out.put({"records": records, "bytes": nbytes, "passes": passes, "done": done, "cpu_s": cpu_s, "errors": errors})


def _run_clients(target, argsets: list[tuple], timeout_s: float, snapshot=lambda: None):
    """Start one process per argument tuple, release them together once all are connected;
    (the start time, their reports, snapshot() just before the start, snapshot() once all reported)."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, ready, go, out)) for args in argsets]
    reports: list[dict] = []
    try:
        for proc in procs:
            proc.start()
        for _ in procs:
            if not ready.acquire(timeout=60):
                raise RuntimeError("a client process did not connect")
        before = snapshot()
        t0 = time.monotonic()
        go.set()
        deadline = time.monotonic() + timeout_s
        while len(reports) < len(procs):
            try:
                reports.append(out.get(timeout=0.5))
            except Exception:  # noqa: BLE001 - queue.Empty: look for a dead client
                dead = [proc.exitcode for proc in procs if proc.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"client processes failed (exit codes {dead}) or timed out") from None
        return t0, reports, before, snapshot()
    finally:
        go.set()
        for proc in procs:
            if proc.pid is None:
                continue
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


# --- one measurement --------------------------------------------------------------------------


@dataclass
class Phase:
    """One timed phase of one run: what went through, and who spent the CPU on it."""

    records: int
    bytes: int
    seconds: float  # from the start signal to the last client done: the throughput's divisor
    window_s: float  # between the CPU snapshots (a little longer: the clients report): the CPU figures' divisor
    broker_cpu_s: dict[str, float]
    zookeeper_cpu_s: float
    client_cpu_s: float
    machine_busy_s: float
    machine_steal_s: float
    clients: int
    errors: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6

    @property
    def broker_cpu_per_gb(self) -> float:
        """Broker CPU seconds, all brokers together, per GB (1e9 bytes) of records through them."""
        return sum(self.broker_cpu_s.values()) / (self.bytes / 1e9)

    @property
    def client_cpu_per_gb(self) -> float:
        return self.client_cpu_s / (self.bytes / 1e9)

    @property
    def broker_cores(self) -> list[float]:
        """Each broker's CPU use in cores over the phase (1.0 = one core all the time)."""
        return [cpu / self.window_s for cpu in self.broker_cpu_s.values()]

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.window_s

    @property
    def machine_cores(self) -> float:
        return self.machine_busy_s / self.window_s

    @property
    def other_cores(self) -> float:
        """Busy CPU that was neither the brokers, ZooKeeper nor the clients: the machine's other users
        (and this script's own polling)."""
        ours = sum(self.broker_cpu_s.values()) + self.zookeeper_cpu_s + self.client_cpu_s
        return max(0.0, self.machine_busy_s - ours) / self.window_s


def measured(cluster: HostCluster, work) -> Phase:
    """Run `work(snapshot)` -> (records, bytes, seconds, client cpu s, clients, errors, CPU snapshot at the
    start signal, CPU snapshot once every client reported), the brokers' and the machine's CPU counted
    over the timed window only (not the clients' start-up)."""
    records, nbytes, seconds, client_cpu_s, clients, errors, (cpu0, machine0, t0), (cpu1, machine1, t1) = work(
        lambda: (cluster.cpu_seconds(), machine_cpu(), time.monotonic()))
    spent = {name: cpu1[name] - cpu0[name] for name in cpu0}
    return Phase(
        records=records, bytes=nbytes, seconds=seconds, window_s=t1 - t0,
        broker_cpu_s={name: value for name, value in spent.items() if name.startswith("broker-")},
        zookeeper_cpu_s=spent["zookeeper"], client_cpu_s=client_cpu_s,
        machine_busy_s=machine1["busy"] - machine0["busy"], machine_steal_s=machine1["steal"] - machine0["steal"],
        clients=clients, errors=errors,
    )


def produce_phase(bootstrap: str, producers: int, size: int, seconds: float):
    def work(snapshot):
        before = settled_total(bootstrap)
        t0, reports, cpu0, cpu1 = _run_clients(_producer, [(bootstrap, size, seconds)] * producers,
                                               timeout_s=seconds + 180, snapshot=snapshot)
        elapsed = max(r["done"] for r in reports) - t0
        acked = settled_total(bootstrap) - before
        unflushed = sum(r["unflushed"] for r in reports)
        errors = [e for r in reports for e in r["errors"]] + ([f"{unflushed} records not flushed"] if unflushed else [])
        return acked, acked * size, elapsed, sum(r["cpu_s"] for r in reports), producers, errors[:5], cpu0, cpu1
    return work


def consume_phase(bootstrap: str, consumers: int, partitions: int, seconds: float):
    blocks = [list(range(partitions))[i * partitions // consumers:(i + 1) * partitions // consumers]
              for i in range(consumers)]

    def work(snapshot):
        t0, reports, cpu0, cpu1 = _run_clients(_consumer, [(bootstrap, block, seconds) for block in blocks],
                                               timeout_s=seconds + 120, snapshot=snapshot)
        elapsed = max(r["done"] for r in reports) - t0
        errors = [e for r in reports for e in r["errors"]]
        return (sum(r["records"] for r in reports), sum(r["bytes"] for r in reports), elapsed,
                sum(r["cpu_s"] for r in reports), consumers, errors[:5], cpu0, cpu1)
    return work


@dataclass
class Run:
    layout: str
    index: int
    leaders: dict[int, int]
    produce: Phase
    consume: Phase
    memory: dict[str, dict[str, int]]


def one_run(layout: str, index: int, args: argparse.Namespace, work_root: Path, src: Path) -> Run:
    count, replication_factor = (int(x) for x in layout.split("x"))
    work = work_root / f"{layout}-{index}"
    work.mkdir()
    cluster = HostCluster(work, count, src)
    try:
        cluster.start()
        leaders = create_topic(cluster.bootstrap, args.partitions, replication_factor)
        _run_clients(_producer, [(cluster.bootstrap, args.size, args.warmup)] * args.producers,
                     timeout_s=args.warmup + 180)  # warm-up, not timed
        produce = measured(cluster, produce_phase(cluster.bootstrap, args.producers, args.size, args.seconds))
        consume = measured(cluster, consume_phase(cluster.bootstrap, args.consumers, args.partitions, args.seconds))
        run = Run(layout, index, leaders, produce, consume, cluster.memory())
        log(f"{layout} run {index}: leaders {leaders}; " + "; ".join(
            f"{name} {phase.records_per_s:,.0f} rec/s {phase.mb_per_s:.0f} MB/s, broker cores "
            f"{'+'.join(f'{c:.2f}' for c in phase.broker_cores)}, clients {phase.client_cores:.2f}, "
            f"machine {phase.machine_cores:.2f}, other {phase.other_cores:.2f}"
            + (f", errors {phase.errors}" if phase.errors else "")
            for name, phase in (("produce", produce), ("consume", consume))))
        return run
    except Exception:
        for log_file in sorted(work.glob("*.log")):
            log(f"--- {log_file.name} (end)\n{log_file.read_text(errors='replace')[-2000:]}")
        raise
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


# --- the report -------------------------------------------------------------------------------


def median_range(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def describe_layout(layout: str) -> str:
    count, replication_factor = layout.split("x")
    return f"{count} broker{'s' if count != '1' else ''}, RF={replication_factor}"


def summary_table(runs: list[Run], layouts: list[str], phase_name: str) -> list[str]:
    lines = [f"| {phase_name} | records/s | MB/s | speed-up (medians) | broker CPU s per GB | client CPU s per GB "
             "| broker cores (each) | client cores | machine busy cores | other users' cores |",
             "| --- |" + " ---: |" * 9]
    base = None
    for layout in layouts:
        phases = [getattr(r, phase_name) for r in runs if r.layout == layout]
        if not phases:
            continue
        mb = [p.mb_per_s for p in phases]
        base = base or statistics.median(mb)
        brokers_each = " + ".join(median_range([p.broker_cores[i] for p in phases], ".2f")
                                  for i in range(len(phases[0].broker_cores)))
        lines.append(
            f"| {describe_layout(layout)} | {median_range([p.records_per_s for p in phases], ',.0f')} "
            f"| {median_range(mb, ',.0f')} | {statistics.median(mb) / base:.2f} "
            f"| {median_range([p.broker_cpu_per_gb for p in phases], '.2f')} "
            f"| {median_range([p.client_cpu_per_gb for p in phases], '.2f')} | {brokers_each} "
            f"| {median_range([p.client_cores for p in phases], '.2f')} "
            f"| {median_range([p.machine_cores for p in phases], '.2f')} "
            f"| {median_range([p.other_cores for p in phases], '.2f')} |")
    return lines


def runs_table(runs: list[Run]) -> list[str]:
    lines = ["| layout | run | leaders per broker | phase | records | s | MB/s | broker CPU s (each) | ZooKeeper CPU s "
             "| client CPU s | machine busy CPU s | steal s | errors |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    for run in runs:
        for name in ("produce", "consume"):
            p = getattr(run, name)
            leaders = ", ".join(f"{b}: {n}" for b, n in run.leaders.items())
            lines.append(
                f"| {describe_layout(run.layout)} | {run.index} | {leaders} | {name} | {p.records:,} | {p.seconds:.2f} "
                f"| {p.mb_per_s:,.0f} | {' + '.join(f'{c:.2f}' for c in p.broker_cpu_s.values())} "
                f"| {p.zookeeper_cpu_s:.2f} | {p.client_cpu_s:.2f} | {p.machine_busy_s:.2f} | {p.machine_steal_s:.2f} "
                f"| {'; '.join(p.errors) or '-'} |")
    return lines


def memory_lines(runs: list[Run], layouts: list[str]) -> list[str]:
    lines = []
    for layout in layouts:
        mine = [r for r in runs if r.layout == layout]
        if not mine:
            continue
        rss = [m["VmRSS"] / 2**20 for r in mine for m in r.memory.values()]
        hwm = [m["VmHWM"] / 2**20 for r in mine for m in r.memory.values()]
        lines.append(f"- {describe_layout(layout)}: per broker after the run, RSS {min(rss):.0f}-{max(rss):.0f} MiB, "
                     f"peak (VmHWM) {min(hwm):.0f}-{max(hwm):.0f} MiB")
    return lines


def environment(revision: str) -> str:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 2**20
    import confluent_kafka
    if revision == "worktree":
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "odradek"],
                               capture_output=True, text=True).stdout.strip()
        tree = f"the work tree at {commit}{' (odradek/ modified)' if dirty else ''}"
    else:
        tree = f"odradek as committed at {revision}"
    return (f"{tree}; {os.cpu_count()} cores "
            f"({model}), {mem_gib:.1f} GiB RAM, Linux {platform.release()}, Python {platform.python_version()}, "
            f"librdkafka {confluent_kafka.libversion()[0]}, Apache ZooKeeper {ZOOKEEPER_VERSION}")


def report(runs: list[Run], args: argparse.Namespace, command: str, load: tuple[float, float]) -> str:
    layouts = args.layouts.split(",")
    lines = [
        f"# Several odradek brokers on one host, {time.strftime('%Y-%m-%d')}",
        "",
        f"`{command}`",
        "",
        f"{environment(args.commit)}. Load average before the runs {load[0]:.2f}, after {load[1]:.2f}.",
        "",
        f"Each run: Apache ZooKeeper and `odradek server --workers N` in cluster mode on this host (broker.rack = the host), "
        f"a topic of {args.partitions} partitions with the layout's replication factor, {args.warmup:g} s untimed "
        f"warm-up, then {args.producers} librdkafka producer processes (acks=1, {args.size} B records, "
        f"linger.ms=5) for {args.seconds:g} s, then {args.consumers} consumer processes (assign(), a block of "
        f"partitions each, from offset 0, again from the start at the end) for {args.seconds:g} s. "
        f"{args.runs} runs per layout, taken in turn; figures are median (lowest-highest). CPU 'cores' are CPU "
        f"seconds over the phase's wall time; the machine has {os.cpu_count()}.",
        "",
        *summary_table(runs, layouts, "produce"),
        "",
        *summary_table(runs, layouts, "consume"),
        "",
        "Memory:",
        "",
        *memory_lines(runs, layouts),
        "",
        "Every run:",
        "",
        *runs_table(runs),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", default="1x1,2x1",
                        help="comma-separated NxR: N brokers, replication factor R (e.g. 1x1,2x1,2x2)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each timed phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--producers", type=int, default=3)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--commit", default="HEAD",
                        help="run odradek as committed at this revision (git archive); 'worktree' for the work tree")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (also printed)")
    parser.add_argument("--json", type=Path, help="write every run's raw figures here")
    args = parser.parse_args()
    command = ".venv/bin/python bench/scaling.py " + " ".join(sys.argv[1:])
    layouts = args.layouts.split(",")
    load_before = os.getloadavg()[0]
    work_root = Path(tempfile.mkdtemp(prefix="odradek-scaling-"))
    runs: list[Run] = []
    try:
        if args.commit == "worktree":
            src = REPO
        else:
            args.commit = subprocess.run(["git", "rev-parse", "--short", args.commit], capture_output=True, text=True,
                                         check=True, cwd=REPO).stdout.strip()  # fixed now: HEAD may move meanwhile
            src = brokers.archive_odradek(args.commit, work_root / "src")
        for index in range(1, args.runs + 1):
            for layout in layouts:
                runs.append(one_run(layout, index, args, work_root, src))
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    text = report(runs, args, command.strip(), (load_before, os.getloadavg()[0]))
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps([{**run.__dict__, "produce": run.produce.__dict__,
                                          "consume": run.consume.__dict__} for run in runs], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
