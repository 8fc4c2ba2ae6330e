"""Start and stop the two brokers under test: Apache Kafka (KRaft, single node) and odradek.

Both run with their defaults plus SHARED_CONFIG (the settings by which Kafka's sample
config/server.properties departs from Kafka's defaults on a single node), on free ports, with data in a
fresh temporary directory. `broker_config()` reads back what a running broker reports (DescribeConfigs),
so that a run can show the two agree.
`start()` measures the start-up time from process start to the first acknowledged produce.
`secure()` adds listeners (SSL, SASL_SSL) and their configs, the same Kafka config names for both.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

REPO_ROOT = Path(__file__).resolve().parent.parent
HYPOTHESIS_DIR = REPO_ROOT / ".cache" / "bench" / "hypothesis"

# kafka-server-start.sh's defaults: KAFKA_HEAP_OPTS and KAFKA_JVM_PERFORMANCE_OPTS
KAFKA_JVM_OPTS = [
    "-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]

# Given to both brokers. Kafka's sample config/server.properties sets these away from the defaults (the
# internal topics' replication to 1, for a single node; a 3-node default would leave odradek asking
# for three replicas and Kafka refusing to create the topics). group.initial.rebalance.delay.ms=0 is
# what Kafka's sample set for development through 3.x (the default, 3000, holds every new group back
# 3 s). The sample's other settings (threads, socket buffers, num.partitions=1, retention, segment
# size) are both brokers' defaults already, except num.recovery.threads.per.data.dir (1 in the sample,
# 2 by default in both since Kafka 4.0), which only start-up after an unclean stop would feel: both
# keep the default.
SHARED_CONFIG = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # Not from the sample: a topic a run wrote is removed a second after its deletion (default: a
    # minute) on both brokers, and the next run waits until it is (run.delete_topic says why).
    "log.segment.delete.delay.ms": "1000",
}
# Share groups (KIP-932) exist only in Kafka; its sample gives their state topic one replica too.
KAFKA_ONLY_CONFIG = {
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}

LOG4J2 = """\
rootLogger.level=INFO
rootLogger.appenderRef.f.ref=F
appender.f.type=File
appender.f.name=F
appender.f.fileName={log}
appender.f.layout.type=PatternLayout
appender.f.layout.pattern=[%d] %p %m (%c)%n
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_cpus(cpus: set[int] | None):
    """A subprocess preexec_fn confining the child (and every thread it starts) to `cpus`; None for any CPU."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid` in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


class Broker:
    name = "?"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.startup_s = float("nan")
        self.port_open_s = float("nan")
        self.secured: dict[str, int] = {}  # listener name (= security protocol) -> port
        self.extra_config: dict[str, str] = {}  # broker configs both brokers get (secure(), or a workload's)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def secure(self, listeners: list[str], config: dict[str, str]) -> None:
        """Listeners next to PLAINTEXT, each named after its security protocol, and the broker configs
        they need; PLAINTEXT stays for start-up detection and topic creation. Before `start()`."""
        self.secured = dict.fromkeys(listeners, 0)
        self.extra_config.update(config)

    def address(self, listener: str) -> str:
        return self.bootstrap if listener == "PLAINTEXT" else f"127.0.0.1:{self.secured[listener]}"

    def _listeners(self) -> str:
        """The client listeners, PLAINTEXT first; picks the secured listeners' ports."""
        self.secured = {name: free_port() for name in self.secured}
        return ",".join([f"PLAINTEXT://127.0.0.1:{self.port}",
                         *(f"{name}://127.0.0.1:{port}" for name, port in self.secured.items())])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _command(self) -> tuple[list[str], dict[str, str] | None]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Everything before the process starts (not part of start-up time)."""

    def log_path(self) -> Path:
        raise NotImplementedError

    def start(self, timeout: float = 90.0) -> None:
        self.prepare()
        cmd, env = self._command()
        out = open(self.workdir / f"{self.name}.stdout", "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                                     start_new_session=True)
        out.close()
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while starting; see {self.log_path()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not open port {self.port} in {timeout} s")
                time.sleep(0.005)
        self.port_open_s = time.monotonic() - t0
        acked: list = []
        p = Producer({
            "bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 0,
            "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 50, "retry.backoff.ms": 10,
            "retry.backoff.max.ms": 50, "topic.metadata.refresh.fast.interval.ms": 10,
            "message.timeout.ms": int(timeout * 1000),
        })
        p.produce("bench-startup", b"first", on_delivery=lambda err, msg: acked.append(err))
        while not acked:
            p.poll(0.002)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no acknowledged produce within {timeout} s")
        if acked[0] is not None:
            raise RuntimeError(f"{self.name}: first produce failed: {acked[0]}")
        self.startup_s = time.monotonic() - t0
        p.flush(5)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def memory(self) -> dict[str, int]:
        return proc_status(self.pid)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path().read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class KafkaBroker(Broker):
    name = "kafka"

    def __init__(self, workdir: Path, libs: Path, version: str):
        super().__init__(workdir)
        self.libs = libs
        self.version = version
        self.data = workdir / "kafka-data"
        self.cluster_id = "-"
        while self.cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid: not read as an option
            self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    def log_path(self) -> Path:
        return self.workdir / "kafka-server.log"

    def classpath(self) -> str:
        return str(self.libs / "*")

    def prepare(self) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)
        self.port = free_port()
        controller = free_port()
        listeners = self._listeners()
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
            "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT", *(f"{n}:{n}" for n in self.secured)]),
            "log.dirs": str(self.data),
            **SHARED_CONFIG,
            **KAFKA_ONLY_CONFIG,
            **self.extra_config,
        }
        self.config = self.workdir / "server.properties"
        self.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.log4j = self.workdir / "log4j2.properties"
        self.log4j.write_text(LOG4J2.format(log=self.log_path()))
        subprocess.run(
            ["java", "-Xmx256M", "-cp", self.classpath(), f"-Dlog4j2.configurationFile={self.log4j}",
             "kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(self.config), "--standalone"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.workdir,
        )

    def _command(self):
        return (["java", *KAFKA_JVM_OPTS, "-cp", self.classpath(),
                 f"-Dlog4j2.configurationFile={self.log4j}", "kafka.Kafka", str(self.config)], None)


class OdradekBroker(Broker):
    name = "odradek"

    def __init__(self, workdir: Path, python: str = sys.executable, src: Path | None = None):
        super().__init__(workdir)
        self.python = python
        self.src = src or REPO_ROOT  # the directory holding the odradek package to run
        self.data = workdir / "odradek-data"

    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.stdout"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.src), env.get("PYTHONPATH")) if p)
        # kio registers hypothesis strategies when hypothesis is importable (it is in the test venv the
        # benchmark uses, not in a plain install); hypothesis then builds a unicode table in
        # ./.hypothesis, about 3 s, in every fresh working directory. Share one warm copy.
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(HYPOTHESIS_DIR)
        return env

    def prepare(self) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)
        self.port = free_port()
        HYPOTHESIS_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([self.python, "-c", "import kio.static.primitive"], env=self._env(), cwd=self.workdir,
                       check=False)
        # The package's bytecode, as `pip install` writes it: without it (a checkout, run where
        # PYTHONDONTWRITEBYTECODE is set) every start compiles some 150 modules, about 0.35 s here,
        # which no installed broker pays. Kafka's start-up likewise begins from compiled classes.
        subprocess.run([self.python, "-m", "compileall", "-q", str(self.src / "odradek")], cwd=self.workdir,
                       check=True, stdout=subprocess.DEVNULL)

    def _command(self):
        env = self._env()
        config = {**SHARED_CONFIG, **self.extra_config}
        extra = [arg for key, value in config.items() for arg in ("--override", f"{key}={value}")]
        return ([self.python, "-m", "odradek", "server",
                 "--override", f"listeners={self._listeners()}",
                 "--override", f"log.dirs={self.data}", *extra], env)


def broker_config(bootstrap: str) -> dict[str, str | None]:
    """Every broker config the broker at `bootstrap` reports through DescribeConfigs, name -> value."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    broker_id = next(iter(admin.list_topics(timeout=10).brokers))
    resource = ConfigResource(ConfigResource.Type.BROKER, str(broker_id))
    entries = admin.describe_configs([resource])[resource].result(30)
    return {name: entry.value for name, entry in entries.items()}


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="odradek-bench-"))


def archive_odradek(commit: str, into: Path) -> Path:
    """The odradek package as committed at `commit`, written to the new directory `into` (to run
    a commit rather than the work tree, as OdradekBroker's `src`)."""
    into.mkdir()
    subprocess.run(f"git archive {shlex.quote(commit)} odradek | tar -x -C {shlex.quote(str(into))}", shell=True,
                   check=True, cwd=REPO_ROOT)
    return into
