"""The `odradek` command as a user runs it: a subprocess, exit codes, what lands on stderr."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import odradek
from odradek.cli.main import main
from odradek.cli.server import load_config, parse_overrides
from odradek.cli import UsageError

REPO = Path(__file__).resolve().parents[2]


def odradek_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "odradek", *args],
        capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=30,
    )


def assert_one_line_usage_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    command = next(arg for arg in result.args[3:] if not arg.startswith("-"))
    assert last.startswith(f"odradek {command}: "), result.stderr
    assert last.endswith(f"(see 'odradek {command} --help')"), result.stderr
    for fragment in fragments:
        assert fragment in last


def test_version():
    result = odradek_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"odradek {odradek.__version__}"


def test_server_invalid_value_exits_2_with_one_line():
    result = odradek_cli("server", "--override", "num.partitions=abc")
    assert_one_line_usage_error(
        result, "invalid value 'abc' for config 'num.partitions': expected an integer"
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_server_missing_config_file_exits_2(tmp_path):
    missing = tmp_path / "nope.properties"
    result = odradek_cli("server", str(missing))
    assert_one_line_usage_error(result, "cannot read config file", str(missing), "No such file")
    assert len(result.stderr.strip().splitlines()) == 1


def test_server_invalid_value_in_file_exits_2(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text("listeners=PLAINTEXT://localhost:9092\nlog.segment.bytes=10\n")
    result = odradek_cli("server", str(path))
    assert_one_line_usage_error(result, "'log.segment.bytes'", "at least 14")


def test_server_malformed_override_exits_2():
    result = odradek_cli("server", "--override", "foo")
    assert_one_line_usage_error(result, "malformed --override 'foo': expected key=value")


def test_server_with_unreachable_zookeeper_is_one_line_after_warning_about_typos(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    path = tmp_path / "server.properties"
    path.write_text(
        f"zookeeper.connect=127.0.0.1:{port}\nzookeeper.connection.timeout.ms=1000\nlog.segment.byte=100\n"
        f"log.dirs={tmp_path / 'data'}\nlisteners=PLAINTEXT://127.0.0.1:0\n"
    )
    result = odradek_cli("server", str(path))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"cannot reach ZooKeeper at 127.0.0.1:{port}" in errors[0], result.stderr
    assert "WARN unknown config 'log.segment.byte' ignored; did you mean 'log.segment.bytes'?" in result.stderr
    assert "(odradek.config)" in result.stderr


def test_unknown_option_is_one_line_not_a_usage_dump():
    result = odradek_cli("server", "--bogus")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--bogus" in result.stderr


def test_no_command_prints_help_and_exits_2():
    result = odradek_cli()
    assert result.returncode == 2
    assert "server" in result.stderr


def test_overrides_take_precedence_over_the_file(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text("num.partitions=2\nlog.dirs=/data\n")
    config, warnings = load_config(path, ["num.partitions=5", "listeners=PLAINTEXT://:0"])
    assert warnings == []
    assert config["num.partitions"] == 5
    assert config.log_dirs == [Path("/data")]
    assert config.listeners[0].port == 0


def test_override_value_may_contain_equals_signs():
    assert parse_overrides(["a=b=c", "empty="]) == {"a": "b=c", "empty": ""}
    with pytest.raises(UsageError):
        parse_overrides(["=value"])


def test_main_runs_the_broker_with_the_built_config(monkeypatch, tmp_path):
    import types

    seen = {}

    def run_broker(config):
        seen["config"] = config
        return 0

    monkeypatch.setitem(sys.modules, "odradek.broker", types.SimpleNamespace(run_broker=run_broker))
    assert main(["server", str(REPO / "config" / "server.properties"), "--override", "node.id=7"]) == 0
    assert seen["config"].node_id == 7
    assert seen["config"]["num.partitions"] == 1


def test_server_workers_without_zookeeper_is_one_line(tmp_path):
    result = odradek_cli("server", "--workers", "2", "--override", f"log.dirs={tmp_path}")
    assert_one_line_usage_error(result, "--workers needs cluster mode: set zookeeper.connect")


def test_server_workers_must_be_at_least_one(tmp_path):
    result = odradek_cli("server", "--workers", "0", "--override", "zookeeper.connect=127.0.0.1:1")
    assert_one_line_usage_error(result, "--workers must be between 1 and 256, not 0")


def test_server_workers_whose_ports_would_collide_is_one_line(tmp_path):
    # Worker 1's PLAINTEXT port (9092 + 1) is worker 0's SSL port.
    result = odradek_cli("server", "--workers", "2", "--override", "zookeeper.connect=127.0.0.1:1",
                         "--override", "listeners=PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093")
    assert_one_line_usage_error(result, "port 9093 would be taken twice: by listener SSL of worker 0 and by "
                                        "listener PLAINTEXT of worker 1", "at least 3 apart")
    result = odradek_cli("server", "--workers", "3", "--override", "zookeeper.connect=127.0.0.1:1",
                         "--override", "listeners=PLAINTEXT://127.0.0.1:9092",
                         "--override", "metrics.listener=http://127.0.0.1:9090")
    assert_one_line_usage_error(result, "port 9092 would be taken twice: by listener PLAINTEXT of worker 0 and by "
                                        "metrics.listener of worker 1")
    # The supervisor's own metrics.listener (the host's /metrics and /ready) is the configured port.
    result = odradek_cli("server", "--workers", "2", "--override", "zookeeper.connect=127.0.0.1:1",
                         "--override", "listeners=PLAINTEXT://127.0.0.1:9092",
                         "--override", "metrics.listener=http://127.0.0.1:9093")
    assert_one_line_usage_error(result, "port 9093 would be taken twice: by listener PLAINTEXT of worker 1 and by "
                                        "metrics.listener of the supervisor")


def test_each_worker_gets_its_own_id_ports_log_dirs_and_the_host_as_rack(tmp_path):
    import socket

    from odradek.cli.workers import worker_overrides

    config, _ = load_config(None, [
        "broker.id=7000", "zookeeper.connect=zk:2181",
        "listeners=PLAINTEXT://0.0.0.0:9092,INTERNAL://:19092,EXTRA://127.0.0.1:0",
        "advertised.listeners=PLAINTEXT://h7.example.net:9092,INTERNAL://h7:19092,EXTRA://127.0.0.1:0",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,EXTRA:PLAINTEXT",
        "inter.broker.listener.name=INTERNAL",
        f"log.dirs={tmp_path / 'a'},{tmp_path / 'b'}", "metrics.listener=http://127.0.0.1:9644",
    ])
    third = worker_overrides(config, 2)
    assert third["broker.id"] == third["node.id"] == "7002"
    assert third["listeners"] == "PLAINTEXT://0.0.0.0:9094,INTERNAL://0.0.0.0:19094,EXTRA://127.0.0.1:0"
    assert third["advertised.listeners"] == "PLAINTEXT://h7.example.net:9094,INTERNAL://h7:19094,EXTRA://127.0.0.1:0"
    assert third["log.dirs"] == f"{tmp_path / 'a' / 'broker-7002'},{tmp_path / 'b' / 'broker-7002'}"
    assert third["metrics.listener"] == "http://127.0.0.1:9647"  # 9644 is the supervisor's
    assert third["broker.rack"] == socket.gethostname()
    racked, _ = load_config(None, ["zookeeper.connect=zk:2181", "broker.rack=zone-a"])
    assert "broker.rack" not in worker_overrides(racked, 1)
    assert worker_overrides(racked, 1)["broker.id"] == "1"  # no id set: the single node's 0, plus 1
