"""The `odradek` command end to end: a real broker process, the CLI as a subprocess.

Each command's happy path and its mistakes (unknown topic, bad flag, unreachable broker): a
mistake is one line on stderr, a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60


def odradek(*args: str, stdin: str | bytes | None = None, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(
        [sys.executable, "-m", "odradek", *args],
        input=data,
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr
    return result.stdout.decode()


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, exit_code: int | None = None) -> str:
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode != 0, result.stdout
    if exit_code is not None:
        assert result.returncode == exit_code, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("Processed a total")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("odradek"), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr
    return lines[0]


@pytest.fixture
def cli(broker):
    """`cli(...)`: run odradek with --bootstrap-server pointing at a fresh broker."""

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return odradek(*args, "--bootstrap-server", broker.bootstrap_servers, **kwargs)

    run.broker = broker
    return run


@pytest.fixture
def group_cli(start_broker):
    broker = start_broker(**{"group.initial.rebalance.delay.ms": "0"})

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return odradek(*args, "--bootstrap-server", broker.bootstrap_servers, **kwargs)

    run.broker = broker
    return run


def create(cli, topic: str, partitions: int = 1) -> None:
    ok(cli("topics", "--create", "--topic", topic, "--partitions", str(partitions), "--replication-factor", "1"))


def consume_json(cli, topic: str, *extra: str, count: int | None = None) -> list[dict]:
    args = ["consume", "--topic", topic, "--from-beginning", "--timeout-ms", "3000", "--output", "json", *extra]
    if count is not None:
        args += ["--max-messages", str(count)]
    return [json.loads(line) for line in ok(cli(*args)).splitlines()]


# --- the seed's steps -------------------------------------------------------------------------


def test_seed_steps_create_describe_produce_consume(cli):
    out = ok(cli("topics", "--create", "--topic", "kaninitopic", "--partitions", "3", "--replication-factor", "1"))
    assert "Created topic kaninitopic." in out

    described = ok(cli("topics", "--describe", "--topic", "kaninitopic"))
    assert "PartitionCount: 3" in described and "ReplicationFactor: 1" in described
    rows = [line.split() for line in described.splitlines()[2:]]
    assert [row[0] for row in rows] == ["0", "1", "2"]

    ok(cli("produce", "--topic", "kaninitopic", stdin="one\ntwo\nthree\n"))
    out = ok(cli("consume", "--topic", "kaninitopic", "--from-beginning", "--max-messages", "3", "--timeout-ms", "5000"))
    assert sorted(out.splitlines()) == ["one", "three", "two"]


# --- topics -----------------------------------------------------------------------------------


def test_topics_list_and_json_describe(cli):
    create(cli, "alpha", 2)
    create(cli, "beta")
    assert {"alpha", "beta"} <= set(ok(cli("topics", "--list")).split())
    described = json.loads(ok(cli("topics", "--describe", "--topic", "alpha", "--output", "json")))
    assert described[0]["topic"] == "alpha"
    assert described[0]["partition_count"] == 2
    assert [p["partition"] for p in described[0]["partitions"]] == [0, 1]
    assert all(p["replicas"] == p["isr"] for p in described[0]["partitions"])
    assert json.loads(ok(cli("topics", "--describe", "--under-replicated-partitions", "--output", "json"))) == []


def test_topics_create_twice_fails_unless_if_not_exists(cli):
    create(cli, "twice")
    assert_one_line_error(cli("topics", "--create", "--topic", "twice"), "twice", "already exists")
    assert "already exists" in ok(cli("topics", "--create", "--topic", "twice", "--if-not-exists"))


def test_topics_create_with_config_and_bad_config(cli):
    ok(cli("topics", "--create", "--topic", "configured", "--config", "retention.ms=12345", "--config", "cleanup.policy=compact"))
    assert_one_line_error(cli("topics", "--create", "--topic", "badconf", "--config", "segment.bytes=abc"), "badconf")
    assert_one_line_error(cli("topics", "--create", "--topic", "x", "--config", "novalue"), "--config", exit_code=2)


def test_topics_delete_and_if_exists(cli):
    create(cli, "doomed")
    assert "Deleted topic doomed." in ok(cli("topics", "--delete", "--topic", "doomed"))
    assert "doomed" not in ok(cli("topics", "--list")).split()
    assert_one_line_error(cli("topics", "--delete", "--topic", "doomed"), "'doomed' does not exist")
    ok(cli("topics", "--delete", "--topic", "doomed", "--if-exists"))


def test_topics_describe_unknown_topic_is_one_line(cli):
    assert_one_line_error(cli("topics", "--describe", "--topic", "nosuchtopic"), "'nosuchtopic' does not exist", exit_code=1)


def test_topics_alter_adds_partitions(cli):
    create(cli, "growing", 1)
    ok(cli("topics", "--alter", "--topic", "growing", "--partitions", "3"))
    described = json.loads(ok(cli("topics", "--describe", "--topic", "growing", "--output", "json")))
    assert described[0]["partition_count"] == 3


def test_topics_alter_config(cli):
    create(cli, "tuned")
    ok(cli("topics", "--alter", "--topic", "tuned", "--config", "retention.ms=60000"))
    described = json.loads(ok(cli("topics", "--describe", "--topic", "tuned", "--output", "json")))
    assert described[0]["configs"].get("retention.ms") == "60000"


def test_topics_alter_unknown_topic(cli):
    assert_one_line_error(cli("topics", "--alter", "--topic", "ghost", "--partitions", "2"), "'ghost' does not exist")
    ok(cli("topics", "--alter", "--topic", "ghost", "--partitions", "2", "--if-exists"))


# --- produce / consume ------------------------------------------------------------------------


def test_produce_keys_headers_and_consume_prints_every_field(cli):
    create(cli, "keyed", 1)
    ok(
        cli(
            "produce", "--topic", "keyed", "--property", "parse.key=true", "--property", "key.separator=:",
            "--header", "source=cli", "--header", "n=1", stdin="k1:v1\nk2:v2\n",
        )
    )
    out = ok(
        cli(
            "consume", "--topic", "keyed", "--from-beginning", "--max-messages", "2", "--timeout-ms", "5000",
            "--property", "print.key=true", "--property", "print.timestamp=true", "--property", "print.headers=true",
            "--property", "print.partition=true", "--property", "print.offset=true",
        )
    )
    lines = [line.split("\t") for line in out.splitlines()]
    assert [line[1:] for line in lines] == [
        ["Partition:0", "Offset:0", "source:cli,n:1", "k1", "v1"],
        ["Partition:0", "Offset:1", "source:cli,n:1", "k2", "v2"],
    ]
    now_ms = time.time() * 1000
    for line in lines:
        assert line[0].startswith("CreateTime:")
        assert abs(int(line[0].split(":")[1]) - now_ms) < 120_000


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_with_each_compression_round_trips(cli, codec):
    create(cli, f"codec-{codec}")
    values = [f"value-{i}-{codec}" * 3 for i in range(50)]
    ok(cli("produce", "--topic", f"codec-{codec}", "--compression", codec, stdin="\n".join(values) + "\n"))
    records = consume_json(cli, f"codec-{codec}", count=50)
    assert [r["value"] for r in records] == values
    assert [r["offset"] for r in records] == list(range(50))


def test_produce_large_file_is_batched_and_complete(cli, tmp_path):
    create(cli, "bulk", 3)
    path = tmp_path / "bulk.txt"
    count = 30_000
    path.write_text("".join(f"line-{i:06d}\n" for i in range(count)))
    summary = json.loads(ok(cli("produce", "--topic", "bulk", "--file", str(path), "--output", "json")))
    assert summary["records"] == count
    offsets = json.loads(ok(cli("get-offsets", "--topic", "bulk", "--output", "json")))
    assert sum(entry["offset"] for entry in offsets) == count
    # Batched: each partition's log holds far fewer batches than records.
    batches = 0
    for partition_dir in sorted(Path(cli.broker.log_dir).glob("bulk-*")):
        for segment in partition_dir.glob("*.log"):
            document = json.loads(ok(odradek("dump-log", str(segment), "--output", "json")))
            batches += len(document[0]["batches"])
    assert 0 < batches < count / 100


def test_produce_acks_zero_and_one(cli):
    create(cli, "acks")
    ok(cli("produce", "--topic", "acks", "--acks", "1", stdin="a\n"))
    ok(cli("produce", "--topic", "acks", "--acks", "0", stdin="b\n"))
    records = consume_json(cli, "acks", count=2)
    assert [r["value"] for r in records] == ["a", "b"]


def test_produce_to_a_new_topic_creates_it_as_the_console_producer_does(cli):
    """Kafka's console producer asks Metadata with auto-creation allowed; so does odradek produce."""
    ok(cli("produce", "--topic", "brand-new", stdin="x\ny\n"))
    assert [r["value"] for r in consume_json(cli, "brand-new", count=2)] == ["x", "y"]


def test_produce_to_unknown_topic_without_auto_creation_is_one_line(start_broker):
    broker = start_broker(**{"auto.create.topics.enable": "false"})
    result = odradek("produce", "--topic", "nowhere", "--bootstrap-server", broker.bootstrap_servers, stdin="x\n")
    assert_one_line_error(result, "'nowhere' does not exist", exit_code=1)


def test_produce_missing_key_separator_is_one_line(cli):
    create(cli, "seps")
    assert_one_line_error(
        cli("produce", "--topic", "seps", "--property", "parse.key=true", stdin="no separator here\n"), "key separator", exit_code=2
    )


def test_consume_partition_and_offset(cli):
    create(cli, "positioned", 2)
    ok(cli("produce", "--topic", "positioned", "--partition", "1", stdin="".join(f"m{i}\n" for i in range(5))))
    assert_one_line_error(
        cli("consume", "--topic", "positioned", "--partition", "1", "--offset", "3", "--from-beginning"), "alternatives", exit_code=2
    )
    out = ok(cli("consume", "--topic", "positioned", "--partition", "1", "--offset", "3", "--timeout-ms", "2000"))
    assert out.splitlines() == ["m3", "m4"]
    out = ok(cli("consume", "--topic", "positioned", "--partition", "0", "--offset", "earliest", "--timeout-ms", "1500"))
    assert out == ""


def test_consume_latest_by_default_sees_only_new_records(cli):
    create(cli, "fresh")
    ok(cli("produce", "--topic", "fresh", stdin="old\n"))
    out = ok(cli("consume", "--topic", "fresh", "--timeout-ms", "1500"))
    assert out == ""


def test_consume_unknown_topic_and_bad_flags(cli):
    assert_one_line_error(cli("consume", "--topic", "nothere", "--timeout-ms", "2000"), "'nothere' does not exist", exit_code=1)
    create(cli, "flags")
    assert_one_line_error(cli("consume", "--topic", "flags", "--offset", "3"), "--offset needs --partition", exit_code=2)
    assert_one_line_error(cli("consume", "--topic", "flags", "--partition", "7", "--timeout-ms", "1000"), "no partition 7", exit_code=2)
    assert_one_line_error(cli("consume", "--topic", "flags", "--no-such-flag"), "unrecognized arguments", exit_code=2)


def test_consume_in_group_commits_and_resumes(group_cli):
    cli = group_cli
    create(cli, "grouped", 3)
    ok(cli("produce", "--topic", "grouped", stdin="".join(f"r{i}\n" for i in range(6))))
    first = consume_json(cli, "grouped", "--group", "readers", count=6)
    assert sorted(r["value"] for r in first) == [f"r{i}" for i in range(6)]
    ok(cli("produce", "--topic", "grouped", stdin="r6\n"))
    second = consume_json(cli, "grouped", "--group", "readers")
    assert [r["value"] for r in second] == ["r6"]


def test_consume_ctrl_c_commits_in_group(group_cli):
    cli = group_cli
    create(cli, "interrupted", 1)
    ok(cli("produce", "--topic", "interrupted", stdin="a\nb\n"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "odradek", "consume", "--topic", "interrupted", "--group", "ctrlc", "--from-beginning",
         "--bootstrap-server", cli.broker.bootstrap_servers],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
    )
    lines = [process.stdout.readline(), process.stdout.readline()]
    assert lines == [b"a\n", b"b\n"]
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert b"Traceback" not in err
    assert b"Processed a total of 2 messages" in err
    described = json.loads(ok(cli("groups", "--describe", "--group", "ctrlc", "--output", "json")))
    assert [(r["partition"], r["current_offset"], r["lag"]) for r in described[0]["offsets"]] == [(0, 2, 0)]


# --- groups -----------------------------------------------------------------------------------


def test_groups_list_describe_reset_delete_offsets_delete(group_cli):
    cli = group_cli
    create(cli, "ledger", 2)
    ok(cli("produce", "--topic", "ledger", "--partition", "0", stdin="a\nb\nc\n"))
    ok(cli("produce", "--topic", "ledger", "--partition", "1", stdin="d\n"))
    consume_json(cli, "ledger", "--group", "auditors", count=4)

    groups = json.loads(ok(cli("groups", "--list", "--output", "json")))
    assert any(g["group"] == "auditors" for g in groups)

    described = json.loads(ok(cli("groups", "--describe", "--group", "auditors", "--output", "json")))
    offsets = {r["partition"]: (r["current_offset"], r["log_end_offset"], r["lag"]) for r in described[0]["offsets"]}
    assert offsets == {0: (3, 3, 0), 1: (1, 1, 0)}
    assert "LAG" in ok(cli("groups", "--describe", "--group", "auditors"))

    dry = json.loads(ok(cli("groups", "--reset-offsets", "--group", "auditors", "--topic", "ledger", "--to-earliest", "--output", "json")))
    assert {(r["partition"], r["new_offset"]) for r in dry} == {(0, 0), (1, 0)}
    described = json.loads(ok(cli("groups", "--describe", "--group", "auditors", "--output", "json")))
    assert {r["partition"]: r["current_offset"] for r in described[0]["offsets"]} == {0: 3, 1: 1}  # dry run changed nothing

    ok(cli("groups", "--reset-offsets", "--group", "auditors", "--topic", "ledger:0", "--shift-by", "-2", "--execute"))
    ok(cli("groups", "--reset-offsets", "--group", "auditors", "--topic", "ledger:1", "--to-offset", "0", "--execute"))
    described = json.loads(ok(cli("groups", "--describe", "--group", "auditors", "--output", "json")))
    assert {r["partition"]: (r["current_offset"], r["lag"]) for r in described[0]["offsets"]} == {0: (1, 2), 1: (0, 1)}
    again = consume_json(cli, "ledger", "--group", "auditors", count=3)
    assert sorted(r["value"] for r in again) == ["b", "c", "d"]

    ok(cli("groups", "--reset-offsets", "--group", "auditors", "--all-topics", "--to-latest", "--execute"))
    ok(cli("groups", "--reset-offsets", "--group", "auditors", "--topic", "ledger", "--by-duration", "PT1H", "--execute"))
    described = json.loads(ok(cli("groups", "--describe", "--group", "auditors", "--output", "json")))
    assert {r["partition"]: r["current_offset"] for r in described[0]["offsets"]} == {0: 0, 1: 0}
    ok(cli("groups", "--reset-offsets", "--group", "auditors", "--topic", "ledger", "--to-datetime", "2099-01-01T00:00:00.000", "--execute"))
    described = json.loads(ok(cli("groups", "--describe", "--group", "auditors", "--output", "json")))
    assert {r["partition"]: r["current_offset"] for r in described[0]["offsets"]} == {0: 3, 1: 1}

    ok(cli("groups", "--delete-offsets", "--group", "auditors", "--topic", "ledger:1"))
    described = json.loads(ok(cli("groups", "--describe", "--group", "auditors", "--output", "json")))
    assert [r["partition"] for r in described[0]["offsets"]] == [0]

    assert "was successful" in ok(cli("groups", "--delete", "--group", "auditors"))
    assert not any(g["group"] == "auditors" for g in json.loads(ok(cli("groups", "--list", "--output", "json"))))


def test_groups_errors_are_one_line(group_cli):
    cli = group_cli
    assert_one_line_error(cli("groups", "--describe", "--group", "nobody"), "'nobody' does not exist", exit_code=1)
    assert_one_line_error(cli("groups", "--delete", "--group", "nobody"), "nobody", exit_code=1)
    assert_one_line_error(cli("groups", "--describe"), "--group", exit_code=2)
    assert_one_line_error(cli("groups", "--reset-offsets", "--group", "g", "--topic", "t"), "scenario", exit_code=2)
    assert_one_line_error(cli("groups", "--reset-offsets", "--group", "g", "--topic", "t", "--to-datetime", "yesterday"), "--to-datetime", exit_code=2)


# --- configs ----------------------------------------------------------------------------------


def test_configs_describe_and_alter_topic(cli):
    create(cli, "settings")
    assert "Completed updating config for topic settings." in ok(
        cli("configs", "--alter", "--entity-type", "topics", "--entity-name", "settings", "--add-config", "retention.ms=1000,cleanup.policy=[compact,delete]")
    )
    described = json.loads(ok(cli("configs", "--describe", "--entity-type", "topics", "--entity-name", "settings", "--output", "json")))
    values = {c["name"]: (c["value"], c["source"]) for c in described[0]["configs"]}
    assert values["retention.ms"] == ("1000", "DYNAMIC_TOPIC_CONFIG")
    assert values["cleanup.policy"] == ("compact,delete", "DYNAMIC_TOPIC_CONFIG")
    ok(cli("configs", "--alter", "--entity-type", "topics", "--entity-name", "settings", "--delete-config", "retention.ms"))
    table = ok(cli("configs", "--describe", "--entity-type", "topics", "--entity-name", "settings"))
    assert "cleanup.policy" in table and "retention.ms" not in table
    assert "retention.ms" in ok(cli("configs", "--describe", "--entity-type", "topics", "--entity-name", "settings", "--all"))


def test_configs_describe_broker(cli):
    described = json.loads(ok(cli("configs", "--describe", "--entity-type", "brokers", "--entity-name", "0", "--all", "--output", "json")))
    names = {c["name"] for c in described[0]["configs"]}
    assert "log.segment.bytes" in names or "num.partitions" in names


def test_configs_errors_are_one_line(cli):
    assert_one_line_error(cli("configs", "--describe", "--entity-type", "topics", "--entity-name", "absent"), "'absent' does not exist", exit_code=1)
    create(cli, "strict")
    assert_one_line_error(
        cli("configs", "--alter", "--entity-type", "topics", "--entity-name", "strict", "--add-config", "segment.bytes=banana"), "strict"
    )
    assert_one_line_error(cli("configs", "--describe", "--entity-name", "x"), "--entity-type", exit_code=2)


# --- get-offsets ------------------------------------------------------------------------------


def test_get_offsets_earliest_latest_and_by_time(cli):
    create(cli, "counted", 2)
    before_ms = int(time.time() * 1000) - 1000
    ok(cli("produce", "--topic", "counted", "--partition", "0", stdin="a\nb\nc\n"))
    latest = json.loads(ok(cli("get-offsets", "--topic", "counted", "--output", "json")))
    assert [(e["partition"], e["offset"]) for e in latest] == [(0, 3), (1, 0)]
    earliest = json.loads(ok(cli("get-offsets", "--topic", "counted", "--time", "earliest", "--output", "json")))
    assert [e["offset"] for e in earliest] == [0, 0]
    by_time = json.loads(ok(cli("get-offsets", "--topic", "counted", "--time", str(before_ms), "--partitions", "0", "--output", "json")))
    assert [(e["partition"], e["offset"]) for e in by_time] == [(0, 0)]
    assert "counted" in ok(cli("get-offsets", "--topic", "counted"))


def test_get_offsets_errors(cli):
    assert_one_line_error(cli("get-offsets", "--topic", "void"), "'void' does not exist", exit_code=1)
    assert_one_line_error(cli("get-offsets", "--topic", "void", "--time", "soon"), "--time", exit_code=2)


# --- admin APIs the broker may not serve yet ---------------------------------------------------


def test_delete_records_through_client_moves_log_start(cli):
    """DeleteRecords via odradek.client (the CLI has no command for it; kafka-delete-records does)."""
    import asyncio

    from odradek.client import Admin, KafkaClient, TopicPartition

    create(cli, "trimmed")
    ok(cli("produce", "--topic", "trimmed", stdin="a\nb\nc\n"))

    async def trim():
        async with KafkaClient(cli.broker.bootstrap_servers) as client:
            return await Admin(client).delete_records({TopicPartition("trimmed", 0): 2})

    assert asyncio.run(trim()) == {("trimmed", 0): 2}
    earliest = json.loads(ok(cli("get-offsets", "--topic", "trimmed", "--time", "earliest", "--output", "json")))
    assert earliest[0]["offset"] == 2


def test_describe_log_dirs_through_client(cli):
    import asyncio

    from odradek.client import Admin, KafkaClient, TopicPartition

    create(cli, "sized")
    ok(cli("produce", "--topic", "sized", stdin="hello\n"))

    async def describe():
        async with KafkaClient(cli.broker.bootstrap_servers) as client:
            return await Admin(client).describe_log_dirs()

    dirs = asyncio.run(describe())
    assert len(dirs) == 1
    assert dirs[0].partition_sizes[TopicPartition("sized", 0)] > 0


# --- connection errors and usage -----------------------------------------------------------------


def test_unreachable_broker_is_one_line_within_timeout():
    started = time.monotonic()
    result = odradek("topics", "--list", "--bootstrap-server", "127.0.0.1:1", "--timeout-ms", "1500")
    assert_one_line_error(result, "no broker reachable at 127.0.0.1:1", exit_code=1)
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    "args",
    [
        ["produce", "--topic", "t"],
        ["consume", "--topic", "t"],
        ["groups", "--list"],
        ["configs", "--describe", "--entity-type", "topics", "--entity-name", "t"],
        ["get-offsets", "--topic", "t"],
    ],
)
def test_every_client_command_reports_unreachable_broker(args):
    result = odradek(*args, "--bootstrap-server", "127.0.0.1:1", "--timeout-ms", "1000", stdin="x\n")
    assert_one_line_error(result, "no broker reachable", exit_code=1)


def test_usage_error_points_to_the_subcommand_help(cli):
    line = assert_one_line_error(cli("topics", "--create"), "--create needs --topic", exit_code=2)
    assert line.startswith("odradek topics: ") and line.endswith("(see 'odradek topics --help')")
    line = assert_one_line_error(cli("consume", "--topic", "t", "--offset", "5"), "--offset needs --partition", exit_code=2)
    assert line.endswith("(see 'odradek consume --help')")


def test_bad_bootstrap_server_and_missing_action():
    assert_one_line_error(odradek("topics", "--list", "--bootstrap-server", "host:notaport"), "--bootstrap-server", exit_code=2)
    assert_one_line_error(odradek("topics"), "one of the arguments", exit_code=2)
    assert_one_line_error(odradek("topics", "--list", "--partitions", "x"), "invalid int value", exit_code=2)


def test_command_config_unknown_keys_warn_and_are_ignored(cli, tmp_path):
    create(cli, "props")
    config = tmp_path / "client.properties"
    config.write_text("client.id=cli-test\nsasl.nonsense=1\n")
    result = cli("topics", "--list", "--command-config", str(config))
    assert "props" in ok(result).split()
    assert "sasl.nonsense" in result.stderr.decode()
    assert_one_line_error(cli("topics", "--list", "--command-config", str(tmp_path / "missing")), "--command-config", exit_code=2)


def test_help_has_examples():
    for command in ("topics", "produce", "consume", "groups", "configs", "get-offsets", "dump-log"):
        out = ok(odradek(command, "--help"))
        assert "examples:" in out and f"odradek {command}" in out


# --- dump-log ---------------------------------------------------------------------------------


def test_dump_log_prints_batches_records_and_checks_indexes(cli):
    create(cli, "dumped")
    ok(cli("produce", "--topic", "dumped", "--property", "parse.key=true", "--header", "h=1", stdin="k\tv1\nk\tv2\n"))
    ok(cli("produce", "--topic", "dumped", "--compression", "gzip", stdin="v3\n"))
    cli.broker.stop()
    partition_dir = Path(cli.broker.log_dir) / "dumped-0"
    segment = next(partition_dir.glob("*.log"))
    out = ok(odradek("dump-log", "--print-data-log", str(segment)))
    assert "baseOffset: 0 lastOffset: 1 count: 2" in out
    assert "compresscodec: gzip" in out
    assert "isvalid: true" in out
    assert "| offset: 1" in out and "key: k payload: v2" in out and "headerKeys: [h]" in out
    for index in (segment.with_suffix(".index"), segment.with_suffix(".timeindex")):
        assert "passed sanity check" in ok(odradek("dump-log", "--index-sanity-check", str(index)))
    document = json.loads(ok(odradek("dump-log", "--files", f"{segment},{segment.with_suffix('.index')}", "--output", "json")))
    assert [b["count"] for b in document[0]["batches"]] == [2, 1]


def test_dump_log_into_a_closed_pipe_exits_quietly(cli, tmp_path):
    """`odradek dump-log ... | head` stops like cat: no BrokenPipeError traceback."""
    create(cli, "piped")
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"record number {i} with some padding to make the output long\n" for i in range(20_000)))
    ok(cli("produce", "--topic", "piped", "--file", str(lines)))
    segment = Path(cli.broker.log_dir) / "piped-0" / f"{0:020d}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = subprocess.Popen(
        [sys.executable, "-m", "odradek", "dump-log", "--print-data-log", str(segment)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    assert reader.stdout.readline().startswith(b"Dumping ")
    reader.stdout.close()  # what `head -1` does after its line
    stderr = reader.stderr.read().decode()
    assert reader.wait(CLI_TIMEOUT_S) == 128 + signal.SIGPIPE
    assert stderr == ""


def test_dump_log_reports_corruption_and_missing_files(tmp_path):
    import sys as _sys

    _sys.path.insert(0, str(REPO))
    from odradek.protocol.records import encode_batch

    segment = tmp_path / "00000000000000000000.log"
    batch = bytearray(encode_batch([(1000, b"k", b"value")]))
    batch[-1] ^= 0xFF
    segment.write_bytes(bytes(batch) + b"\x00\x01")
    result = odradek("dump-log", str(segment))
    assert result.returncode == 1
    out = result.stdout.decode()
    assert "isvalid: false" in out and "invalid bytes at position" in out
    assert_one_line_error(odradek("dump-log", str(tmp_path / "nope.log")), "no such file", exit_code=2)
