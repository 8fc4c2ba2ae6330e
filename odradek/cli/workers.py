"""`odradek server --workers N`: N brokers of one cluster from one config, under one supervisor.

An odradek broker does its request work on one core; a host with more cores runs several brokers
(docs/scaling.md). This packages that: the process reads the config once, starts N `odradek
server` processes and stays as their supervisor. Worker i (0..N-1) is the config with:

- `broker.id` (and `node.id`) = the config's id + i, so ids stay the same across restarts;
- every port of `listeners` and `advertised.listeners` + i, and of `metrics.listener` + 1 + i (port 0
  stays 0): the supervisor serves the host's merged /metrics and /ready on the configured one
  (odradek.web.host_view);
- each log dir's subdirectory `broker-<id>` (a log dir holds one broker's data);
- `broker.rack` = this host's name when the config sets none, so the rack-aware placement never
  puts two replicas of a partition on one host.

Workers need cluster mode (`zookeeper.connect`): they are separate brokers, which clients reach
through Metadata like any others. Each worker's output comes out prefixed with `[broker <id>] `.
A worker that exits on its own is started again after a pause (1 s, doubling to 30 s; back to
1 s once it has run a minute), unless it exits with the usage-error code 2, which a restart
cannot mend: then every worker is stopped. SIGTERM or SIGINT stops the workers one at a time,
the last first, each finishing its controlled shutdown (its leaderships move to the others)
before the next is asked. A worker also gets SIGTERM when the supervisor dies.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from odradek.cli import UsageError
from odradek.config import BrokerConfig, ConfigError, Listener, parse_listeners
from odradek.web.endpoints import parse_listener
from odradek.web.host_view import HostEndpoints

__all__ = ["supervise", "worker_overrides"]

log = logging.getLogger("odradek.workers")

EXIT_USAGE = 2
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0  # a worker up this long gets the first backoff again when it next exits
STOP_TIMEOUT_S = 120.0  # for one worker's controlled shutdown, then SIGKILL
_PR_SET_PDEATHSIG = 1
_METRICS_PORT = re.compile(r"^(.*):(\d+)(/?)$")


def worker_overrides(config: BrokerConfig, index: int) -> dict[str, str]:
    """The configs worker `index` sets over the shared ones."""
    broker_id = config.node_id + index
    overrides = {"broker.id": str(broker_id), "node.id": str(broker_id),
                 "listeners": _shifted(config.listeners, index),
                 "log.dirs": ",".join(str(d / f"broker-{broker_id}") for d in config.log_dirs)}
    if config["advertised.listeners"] is not None:
        overrides["advertised.listeners"] = _shifted(
            parse_listeners("advertised.listeners", config["advertised.listeners"]), index)  # type: ignore[arg-type]
    metrics = config["metrics.listener"]
    if metrics:
        match = _METRICS_PORT.match(metrics)  # type: ignore[arg-type]
        if match is None:
            raise UsageError(f"config 'metrics.listener' ({metrics}) has no port to give each worker its own")
        port = int(match.group(2))
        overrides["metrics.listener"] = f"{match.group(1)}:{port + 1 + index if port else 0}{match.group(3)}"
    if config["broker.rack"] is None:
        overrides["broker.rack"] = socket.gethostname()
    return overrides


def _shifted(listeners: list[Listener], index: int) -> str:
    return ",".join(str(l._replace(port=l.port + index if l.port else 0)) for l in listeners)


def _check(config: BrokerConfig, workers: int) -> list[dict[str, str]]:
    """Every worker's overrides; UsageError for a config the workers cannot share."""
    if not 1 <= workers <= 256:
        raise UsageError(f"--workers must be between 1 and 256, not {workers}")
    if not config["zookeeper.connect"]:
        raise UsageError("--workers needs cluster mode: set zookeeper.connect (each worker is a broker of the cluster)")
    try:
        overrides = [worker_overrides(config, index) for index in range(workers)]
        ports = [(index, f"listener {listener.name}", listener.port) for index, o in enumerate(overrides)
                 for listener in parse_listeners("listeners", o["listeners"].split(","))]
    except ConfigError as error:
        raise UsageError(str(error)) from None
    ports += [(index, "metrics.listener", int(_METRICS_PORT.match(o["metrics.listener"]).group(2)))  # type: ignore[union-attr]
              for index, o in enumerate(overrides) if "metrics.listener" in o]
    host_view = host_view_address(config)
    if host_view is not None:
        ports.append((-1, "metrics.listener", host_view[1]))
    taken: dict[int, tuple[int, str]] = {}
    for index, what, port in ports:
        if port == 0:
            continue
        other = taken.setdefault(port, (index, what))
        if other != (index, what):
            raise UsageError(
                f"port {port} would be taken twice: by {other[1]} of {_owner(other[0])} and by {what} of "
                f"{_owner(index)} (each worker adds its number to every port, and one more to the metrics.listener's, "
                f"so space the ports at least {workers + 1} apart)")
    if any(int(o["broker.id"]) > 0x7FFFFFFF for o in overrides):
        raise UsageError(f"broker.id {config.node_id} + {workers - 1} workers passes the largest broker id")
    return overrides


def _owner(index: int) -> str:
    return "the supervisor" if index == -1 else f"worker {index}"


def host_view_address(config: BrokerConfig) -> tuple[str, int] | None:
    """Where the supervisor serves the host's /metrics and /ready: metrics.listener, unless it is
    unset or its port is 0 (then the workers' ports are not known in advance)."""
    listener = config["metrics.listener"]
    if not listener:
        return None
    try:
        host, port = parse_listener(listener)  # type: ignore[arg-type]
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return (host, port) if port else None


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies, even of SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _Worker:
    def __init__(self, broker_id: int, command: list[str]) -> None:
        self.broker_id = broker_id
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.backoff_s = FIRST_BACKOFF_S
        self.restart_at: float | None = None
        self.pending = b""  # output after its last newline


class _Supervisor:
    def __init__(self, commands: list[tuple[int, list[str]]]) -> None:
        self.workers = [_Worker(broker_id, command) for broker_id, command in commands]
        self.selector = selectors.DefaultSelector()
        self.stopping = False

    def start(self, worker: _Worker) -> None:
        worker.process = subprocess.Popen(
            worker.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only, which stops them in turn
            preexec_fn=_die_with_parent,
        )
        worker.started_at = time.monotonic()
        worker.restart_at = None
        assert worker.process.stdout is not None
        os.set_blocking(worker.process.stdout.fileno(), False)
        self.selector.register(worker.process.stdout, selectors.EVENT_READ, worker)

    def pump(self, timeout_s: float) -> None:
        """Copy what the workers wrote to stderr, line by line with their broker id, for up to
        `timeout_s`; a worker's output that ended (it exited) is unregistered."""
        for key, _ in self.selector.select(timeout_s):
            worker: _Worker = key.data
            try:
                data = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not data:
                self.selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
                self._write(worker, worker.pending + b"\n" if worker.pending else b"")
                worker.pending = b""
                continue
            data = worker.pending + data
            complete, _, worker.pending = data.rpartition(b"\n")
            if complete:
                self._write(worker, complete + b"\n")

    def _write(self, worker: _Worker, lines: bytes) -> None:
        if not lines:
            return
        prefix = f"[broker {worker.broker_id}] ".encode()
        out = b"".join(prefix + line + b"\n" for line in lines.splitlines())
        try:
            sys.stderr.buffer.write(out)
            sys.stderr.buffer.flush()
        except (BrokenPipeError, ValueError):
            pass

    def drain(self, worker: _Worker) -> None:
        """What an exited worker wrote last."""
        deadline = time.monotonic() + 2.0
        while worker.process is not None and worker.process.stdout is not None \
                and not worker.process.stdout.closed and time.monotonic() < deadline:
            self.pump(0.1)

    def run(self) -> int:
        for worker in self.workers:
            self.start(worker)
        ids = [w.broker_id for w in self.workers]
        log.info("started %d workers: brokers %s", len(ids), ", ".join(map(str, ids)))
        while not self.stopping:
            self.pump(0.2)
            now = time.monotonic()
            for worker in self.workers:
                process = worker.process
                if worker.restart_at is not None:
                    if now >= worker.restart_at and not self.stopping:
                        log.info("starting broker %d again", worker.broker_id)
                        self.start(worker)
                    continue
                if process is None or process.poll() is None:
                    continue
                self.drain(worker)
                code = process.returncode
                if code == EXIT_USAGE:
                    log.error("broker %d exited with code %d (its config is not usable); stopping the others",
                              worker.broker_id, code)
                    self.stop_all()
                    return EXIT_USAGE
                if now - worker.started_at >= HEALTHY_AFTER_S:
                    worker.backoff_s = FIRST_BACKOFF_S
                log.warning("broker %d exited with %s; starting it again in %.0f s", worker.broker_id,
                            _describe(code), worker.backoff_s)
                worker.restart_at = now + worker.backoff_s
                worker.backoff_s = min(worker.backoff_s * 2, MAX_BACKOFF_S)
        return self.stop_all()

    def stop_all(self) -> int:
        """One at a time, the last first: each hands its leaderships to those still running."""
        clean = True
        for worker in reversed(self.workers):
            process = worker.process
            if process is None or process.poll() is not None or worker.restart_at is not None:
                continue
            log.info("stopping broker %d", worker.broker_id)
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while process.poll() is None and time.monotonic() < deadline:
                self.pump(0.1)
            if process.poll() is None:
                log.error("broker %d did not stop within %.0f s; killing it", worker.broker_id, STOP_TIMEOUT_S)
                process.kill()
                process.wait()
            self.drain(worker)
            clean = clean and process.returncode == 0
        log.info("all workers stopped")
        return 0 if clean else 1


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def supervise(config: BrokerConfig, config_file: str | None, overrides: Sequence[str], workers: int) -> int:
    """Run `workers` brokers from one config until SIGTERM or SIGINT; the exit code."""
    per_worker = _check(config, workers)
    base = [sys.executable, "-m", "odradek", "server", *([str(Path(config_file))] if config_file else [])]
    for item in overrides:
        base += ["--override", item]
    commands = []
    for worker in per_worker:
        command = list(base)
        for key, value in worker.items():
            command += ["--override", f"{key}={value}"]
        commands.append((int(worker["broker.id"]), command))
    supervisor = _Supervisor(commands)
    address = host_view_address(config)
    host_view = None
    if address is not None:
        workers_http = [(int(w["broker.id"]), *parse_listener(w["metrics.listener"])) for w in per_worker]
        host_view = HostEndpoints(address[0], address[1], workers_http)
        try:
            host_view.start()
        except OSError as error:
            raise UsageError(str(error)) from None

    def stop(signum: int, _frame: object) -> None:
        if supervisor.stopping:
            return
        supervisor.stopping = True
        log.info("%s received: stopping the workers one at a time", signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return supervisor.run()
    finally:
        if host_view is not None:
            host_view.stop()
