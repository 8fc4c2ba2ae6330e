"""Test harness: the broker as a real subprocess on a free port.

`BrokerProcess` runs `python -m odradek server` with `--override` flags for the listener and the
log dir, waits for readiness by connecting to the port (never by sleeping), and can be stopped
(SIGTERM), killed (SIGKILL) and started again on the same port and log dir. The broker's
stdout/stderr go to a file next to the log dir; when start-up fails the error carries the log,
and when a test fails the log of every broker it started is attached to the report. A broker
that dies during a test on its own, or does not exit with 0 on SIGTERM at teardown, is an error
of that test.

Fixtures: `broker` (one fresh broker per test) and `start_broker(**overrides)` (a factory for
brokers with extra config; keys are Kafka config names, `num_partitions` means
`num.partitions` since no Kafka config name has an underscore).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Iterator

import pytest

# pytester drives the odradek pytest plugin in test_inprocess. The plugin is loaded by its
# entry point once odradek is installed (`make test` installs it); from a bare checkout, here.
pytest_plugins = ["pytester"]
if not any(ep.name == "odradek" for ep in entry_points(group="pytest11")):
    pytest_plugins.append("odradek.pytest_plugin")

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 20.0
READY_POLL_S = 0.05
STOP_TIMEOUT_S = 10.0
LOG_TAIL_CHARS = 30_000
EXTERNAL_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class BrokerStartError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def describe_exit(exit_code: int) -> str:
    if exit_code < 0:
        return f"signal {signal.Signals(-exit_code).name}"
    return f"exit code {exit_code}"


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=READY_POLL_S * 4):
            return True
    except OSError:
        return False


class BrokerProcess:
    """One broker subprocess with a fixed port and log dir that survive restarts.

    Not thread-safe; meant to be driven by one test.
    """

    def __init__(self, work_dir: Path, overrides: dict[str, str] | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port = free_port(host)
        self.log_dir = work_dir / "data"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.output_path = work_dir / "broker-output.log"
        self.overrides = dict(overrides or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exit_expected = False

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        settings = {
            "listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "log.dirs": str(self.log_dir),
            **self.overrides,
        }
        command = [sys.executable, "-m", "odradek", "server"]
        for key, value in settings.items():
            command += ["--override", f"{key}={value}"]
        return command

    def start(self) -> "BrokerProcess":
        """Start (or restart) the broker and return once it accepts TCP connections."""
        if self.running:
            raise RuntimeError(f"broker on {self.bootstrap_servers} is already running")
        for attempt in (1, 2):
            self._launch()
            exit_code = self._wait_until_ready()
            if exit_code is None:
                return self
            if attempt == 1 and -exit_code in EXTERNAL_SIGNALS:
                # Seen on shared CI machines: something outside this test run signals a fresh
                # process. The broker cannot have caused it, so it gets one more start.
                self._append_note(f"broker died of {describe_exit(exit_code)} while starting, not sent by this harness; starting again")
                continue
            self.exit_expected = True  # reported here; not again at teardown
            raise BrokerStartError(
                f"broker exited with {describe_exit(exit_code)} before accepting connections on "
                f"{self.bootstrap_servers}\n{self.output()}"
            )
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        self.starts += 1
        self.exit_expected = False
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # Works from a checkout without `pip install -e .` too.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        # kio imports hypothesis when it is installed, and hypothesis builds a unicode table
        # (~3 s) in .hypothesis/ under the cwd unless one is there: share the repository's.
        env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(REPO_ROOT / ".hypothesis"))
        with open(self.output_path, "ab") as output:
            output.write(f"--- start #{self.starts}: {' '.join(self.command())}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.log_dir.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def _wait_until_ready(self) -> int | None:
        """None once the port accepts connections; the exit code if the process ended first."""
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _accepts_connections(self.host, self.port):
            exit_code = self.process.poll()
            if exit_code is not None:
                return exit_code
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerStartError(
                    f"broker did not accept connections on {self.bootstrap_servers} within "
                    f"{READY_TIMEOUT_S:.0f} s\n{self.output()}"
                )
            time.sleep(READY_POLL_S)
        return None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL. Returns the exit code (None if not started)."""
        if self.process is None:
            return None
        self.exit_expected = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._append_note(f"did not exit {timeout_s:.0f} s after SIGTERM; its tasks and threads, then SIGKILL")
                for dump in (signal.SIGUSR1, signal.SIGQUIT):  # where it hangs, in its output
                    self.process.send_signal(dump)
                    time.sleep(0.5)
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> int | None:
        """SIGKILL, like `kill -9`: no chance to flush or close anything."""
        if self.process is None:
            return None
        self.exit_expected = True
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        """The broker's captured stdout and stderr over all its starts (the tail, if very long)."""
        try:
            text = self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        if len(text) > LOG_TAIL_CHARS:
            text = f"[... {len(text) - LOG_TAIL_CHARS} characters cut ...]\n" + text[-LOG_TAIL_CHARS:]
        return text

    def _append_note(self, note: str) -> None:
        with open(self.output_path, "a") as output:
            output.write(f"--- harness: {note}\n")

    def __repr__(self) -> str:
        return f"BrokerProcess({self.bootstrap_servers}, log_dir={str(self.log_dir)!r})"


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3 loads its schemas with importlib.resources APIs deprecated in 3.11.
    config.addinivalue_line("filterwarnings", "ignore:.*is deprecated. Use files\\(\\) instead:DeprecationWarning")


def _config_name(key: str) -> str:
    return key.replace("_", ".")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for broker in getattr(item, "_odradek_brokers", ()):
            report.sections.append((f"broker {broker.bootstrap_servers} output", broker.output()))


@pytest.fixture
def start_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., BrokerProcess]]:
    """Factory: `start_broker(**{"message.max.bytes": "2097152"})` or `start_broker(num_partitions=3)`."""
    brokers: list[BrokerProcess] = []
    request.node._odradek_brokers = brokers

    def start(**overrides: object) -> BrokerProcess:
        work_dir = tmp_path_factory.mktemp("broker")
        broker = BrokerProcess(work_dir, {_config_name(k): str(v) for k, v in overrides.items()})
        brokers.append(broker)
        return broker.start()

    yield start
    problems = []
    for broker in brokers:
        crashed = broker.process is not None and broker.process.poll() is not None and not broker.exit_expected
        was_running = broker.running
        exit_code = broker.stop()
        if crashed:
            problems.append(f"{broker!r} exited on its own during the test with {describe_exit(exit_code)}")
        elif was_running and exit_code != 0:
            problems.append(f"{broker!r} did not shut down cleanly on SIGTERM: {describe_exit(exit_code)}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def broker(start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    """A fresh broker with default config and an empty log dir."""
    return start_broker()
