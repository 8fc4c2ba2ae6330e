"""`odradek dev-cluster --brokers 3`: ZooKeeper and N brokers on this machine, for trying cluster mode.

Starts the real ZooKeeper (as `odradek zookeeper`) and N `odradek server` processes with
broker.id 1..N on consecutive ports, each logging to a file under --data-dir, waits until every
one accepts connections and prints how to reach them. Ctrl-C (or SIGTERM) stops the brokers first
(each makes a controlled shutdown) and ZooKeeper last, and waits for all of them. Data stays in
--data-dir, so the same command starts the same cluster again.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from odradek.cli import UsageError
from odradek.cli.zookeeper import ensure_installed, server_command, write_config

__all__ = ["register", "run"]

READY_TIMEOUT_S = 60.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dev-cluster",
        help="run ZooKeeper and N brokers on this machine",
        description="Start Apache ZooKeeper and N odradek brokers (broker.id 1..N) on this machine for "
        "trying cluster mode; Ctrl-C stops them all (brokers first, each with a controlled shutdown).",
    )
    parser.add_argument("--brokers", type=int, default=3, help="number of brokers (default 3)")
    parser.add_argument("--base-port", type=int, default=9092, help="port of broker 1; broker n listens on base+n-1")
    parser.add_argument("--zookeeper-port", type=int, default=2181, help="ZooKeeper's client port (default 2181)")
    parser.add_argument("--data-dir", default="./odradek-dev-cluster", help="where data and logs go")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a broker config for every broker (repeatable)")
    parser.set_defaults(func=run)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.brokers <= 64:
        raise UsageError(f"--brokers must be between 1 and 64, not {args.brokers}")
    for item in args.override:
        if "=" not in item:
            raise UsageError(f"malformed --override '{item}': expected key=value")
    base = Path(args.data_dir).absolute()
    base.mkdir(parents=True, exist_ok=True)
    ports = [args.base_port + index for index in range(args.brokers)]
    for port in [args.zookeeper_port, *ports]:
        if _accepts(port):
            raise UsageError(f"port {port} is in use: stop what listens there or choose other ports")
    lib = ensure_installed()
    config = write_config(base / "zoo.cfg", {"dataDir": str(base / "zookeeper"), "clientPort": str(args.zookeeper_port)})
    children: list[tuple[str, subprocess.Popen]] = []
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))
    try:
        with open(base / "zookeeper.log", "ab") as output:
            children.append(("zookeeper", subprocess.Popen(server_command(config, lib), stdout=output, stderr=subprocess.STDOUT,
                                                           stdin=subprocess.DEVNULL, start_new_session=True)))
        _wait_ready("ZooKeeper", args.zookeeper_port, children[0][1], base / "zookeeper.log")
        connect = f"127.0.0.1:{args.zookeeper_port}"
        for node_id, port in enumerate(ports, start=1):
            command = [sys.executable, "-m", "odradek", "server",
                       "--override", f"broker.id={node_id}",
                       "--override", f"zookeeper.connect={connect}",
                       "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                       "--override", f"log.dirs={base / f'broker-{node_id}'}"]
            if args.brokers < 3:
                command += ["--override", f"offsets.topic.replication.factor={args.brokers}"]
            for item in args.override:
                command += ["--override", item]
            with open(base / f"broker-{node_id}.log", "ab") as output:
                children.append((f"broker {node_id}", subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                                                       stdin=subprocess.DEVNULL, start_new_session=True)))
        for (name, process), port in zip(children[1:], ports):
            _wait_ready(name, port, process, base / f"{name.replace(' ', '-')}.log")
        bootstrap = ",".join(f"127.0.0.1:{port}" for port in ports)
        print(f"ZooKeeper on {connect}, {args.brokers} brokers on {bootstrap}; data and logs in {base}", flush=True)
        print(f"try: odradek topics --bootstrap-server {bootstrap} --create --topic kaninitopic "
              f"--partitions 3 --replication-factor {min(3, args.brokers)}", flush=True)
        print("Ctrl-C stops them all", flush=True)
        while not stopping:
            for name, process in children:
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}; see {base}", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        _stop_all(children)


def _wait_ready(name: str, port: int, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _accepts(port):
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
            raise UsageError(f"{name} exited while starting ({'; '.join(tail) or 'no output'}); see {log_path}")
        if time.monotonic() > deadline:
            raise UsageError(f"{name} did not accept connections on port {port} within {READY_TIMEOUT_S:.0f} s; see {log_path}")
        time.sleep(0.1)


def _stop_all(children: list[tuple[str, subprocess.Popen]]) -> None:
    """Brokers one by one, last started first (each hands its leaderships to those still
    running), then ZooKeeper. Another Ctrl-C meanwhile does not cut this short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if children:
        print("stopping brokers, then ZooKeeper...", file=sys.stderr, flush=True)
    for name, process in reversed(children):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if children:
        print("stopped", file=sys.stderr, flush=True)
