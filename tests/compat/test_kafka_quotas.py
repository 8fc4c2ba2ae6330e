"""Client quotas with Kafka's own 4.x tools against odradek: what an operator types and reads.

- kafka-configs sets quotas on a user, the default client id, a user+client-id pair and more
  (AlterClientQuotas), lists them with --describe (DescribeClientQuotas) in the exact lines Kafka's
  ConfigCommand prints ("Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0,
  producer_byte_rate=1048576.0"), and removes one with --delete-config.
- Bad values are refused: a fractional byte rate and a rate of 0 by the broker, with Kafka's
  INVALID_REQUEST message in the tool's error; an unknown quota name by the tool itself, before it
  asks the broker anything (ConfigCommand checks names client side, so the broker's "Invalid
  configuration key" cannot be reached through it; tests/integration/test_quotas.py covers it).
- kafka-topics with a client id limited to controller_mutation_rate=5 (KIP-599): a topic past the
  quota is refused with Kafka's "The throttling quota has been exceeded." and a wait, after which
  the same command succeeds.
- kafka-producer-perf-test (ProducerPerformance) with a client id limited to 512 KiB/s is slowed
  to about that rate, sees the broker's throttle time in its producer metrics, and still sends every
  record; a client id without a quota is never throttled.

The line order of a `--describe` listing several entities is that of the Java admin client's
HashMap of entities, not the broker's answer, so those listings are compared sorted.
"""

from __future__ import annotations

import re
import time

import confluent_kafka

from .conftest import create_topic

CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"  # kafka-producer-perf-test.sh
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"  # kafka-topics.sh

ALICE = ("--entity-type", "users", "--entity-name", "alice")
DEFAULT_USER = ("--entity-type", "users", "--entity-default")
DEFAULT_CLIENT = ("--entity-type", "clients", "--entity-default")
REPORTING_CLIENT = ("--entity-type", "clients", "--entity-name", "reporting")
ALICE_ON_APP = ALICE + ("--entity-type", "clients", "--entity-name", "app")

# Quotas measured over two one-second samples: a fresh client's burst is one second of its quota.
SMALL_WINDOW = {"quota.window.num": 2, "quota.window.size.seconds": 1}

# ProducerPerformance's final summary (Stats.printTotal), after its per-window progress lines
PERF_SUMMARY = re.compile(
    r"^(?P<records>\d+) records sent, (?P<per_second>[\d.]+) records/sec \((?P<mb_per_second>[\d.]+) MB/sec\), "
    r"[\d.]+ ms avg latency, [\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$"
)
# --print-metrics: "group:name:{tags}   : value", names padded to the longest
PERF_METRIC = re.compile(r"^(?P<name>\S+:\S+:\{.*\})\s+: (?P<value>\S+)$")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _configs(java_tools, bootstrap: str, *args: object, **kwargs):
    return java_tools.run(CONFIG_COMMAND, "--bootstrap-server", bootstrap, *args, **kwargs)


def _add(java_tools, bootstrap: str, entity: tuple[str, ...], quotas: str) -> list[str]:
    return _lines(_configs(java_tools, bootstrap, "--alter", "--add-config", quotas, *entity).stdout)


def _describe(java_tools, bootstrap: str, *entity: str) -> list[str]:
    return _lines(_configs(java_tools, bootstrap, "--describe", *entity).stdout)


# --- 1. kafka-configs: set, describe, delete ----------------------------------------------------


def test_kafka_configs_sets_describes_and_deletes_client_quotas(broker, java_tools):
    """An operator sets byte rates for user alice, a request percentage for every client id without
    one of its own, quotas for alice's client 'app', the default user and client id 'reporting';
    --describe shows each entity's quotas as Kafka prints them (values as Java doubles), a listing of
    users or client ids shows the entities of that type alone, and --delete-config removes one quota
    and leaves the others."""
    bootstrap = broker.bootstrap_servers

    assert _add(java_tools, bootstrap, ALICE, "producer_byte_rate=1048576,consumer_byte_rate=2097152") == [
        "Completed updating config for user alice."]
    assert _add(java_tools, bootstrap, DEFAULT_CLIENT, "request_percentage=50") == [
        "Completed updating default config for clients in the cluster."]
    # ConfigCommand names the first entity of a user+client-id pair
    assert _add(java_tools, bootstrap, ALICE_ON_APP, "producer_byte_rate=524288,request_percentage=25") == [
        "Completed updating config for user alice."]
    assert _add(java_tools, bootstrap, DEFAULT_USER, "consumer_byte_rate=1048576") == [
        "Completed updating default config for users in the cluster."]
    assert _add(java_tools, bootstrap, REPORTING_CLIENT, "consumer_byte_rate=262144") == [
        "Completed updating config for client reporting."]

    # one entity each; alice has no SCRAM credentials, so no "SCRAM credential configs" line follows
    assert _describe(java_tools, bootstrap, *ALICE) == [
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0, producer_byte_rate=1048576.0"]
    assert _describe(java_tools, bootstrap, *DEFAULT_CLIENT) == [
        "Quota configs for the default client-id are request_percentage=50.0"]
    assert _describe(java_tools, bootstrap, *ALICE_ON_APP) == [
        "Quota configs for user-principal 'alice', client-id 'app' are producer_byte_rate=524288.0, "
        "request_percentage=25.0"]

    # every entity of one type, and only of that type: alice's quotas on 'app' are in neither listing
    assert sorted(_describe(java_tools, bootstrap, "--entity-type", "users")) == [
        "Quota configs for the default user-principal are consumer_byte_rate=1048576.0",
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0, producer_byte_rate=1048576.0",
    ]
    assert sorted(_describe(java_tools, bootstrap, "--entity-type", "clients")) == [
        "Quota configs for client-id 'reporting' are consumer_byte_rate=262144.0",
        "Quota configs for the default client-id are request_percentage=50.0",
    ]

    deleted = _configs(java_tools, bootstrap, "--alter", "--delete-config", "producer_byte_rate", *ALICE)
    assert _lines(deleted.stdout) == ["Completed updating config for user alice."]
    assert _describe(java_tools, bootstrap, *ALICE) == [
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0"]
    # the pair's own producer_byte_rate is another entity's and stays
    assert _describe(java_tools, bootstrap, *ALICE_ON_APP) == [
        "Quota configs for user-principal 'alice', client-id 'app' are producer_byte_rate=524288.0, "
        "request_percentage=25.0"]


# --- 2. kafka-configs: refused values -----------------------------------------------------------


def test_kafka_configs_reports_refused_quota_values(broker, java_tools):
    """A fractional producer_byte_rate and a rate of 0 reach the broker, which refuses them with
    INVALID_REQUEST; the tool exits 1 and its error carries Kafka's message. An unknown quota name is
    refused by the tool itself. Nothing is stored, and the broker goes on serving: a fractional
    request_percentage (a double in Kafka) is then set for the same user."""
    bootstrap = broker.bootstrap_servers
    bob = ("--entity-type", "users", "--entity-name", "bob")

    for quota, message in [
        ("producer_byte_rate=1.5", "producer_byte_rate cannot be a fractional value."),
        ("producer_byte_rate=0", "Quota producer_byte_rate must be greater than 0"),
    ]:
        refused = _configs(java_tools, bootstrap, "--alter", "--add-config", quota, *bob, check=False)
        assert refused.returncode == 1, refused
        assert refused.stdout == "", refused
        errors = _lines(refused.stderr)
        assert errors[0] == (f"Error while executing config command with args '--bootstrap-server {bootstrap} "
                             f"--alter --add-config {quota} --entity-type users --entity-name bob'"), refused.stderr
        assert ("java.util.concurrent.ExecutionException: org.apache.kafka.common.errors.InvalidRequestException: "
                f"{message}") in errors, refused.stderr
        assert f"Caused by: org.apache.kafka.common.errors.InvalidRequestException: {message}" in errors, refused.stderr

    unknown = _configs(java_tools, bootstrap, "--alter", "--add-config", "unknown_quota=5", *bob, check=False)
    assert unknown.returncode == 1, unknown
    assert unknown.stdout == "", unknown
    assert _lines(unknown.stderr) == [
        "Only quota and SCRAM credential configs can be added for 'users' using --bootstrap-server. "
        "Unexpected config names: unknown_quota"]

    assert _describe(java_tools, bootstrap, *bob) == []
    assert _add(java_tools, bootstrap, bob, "request_percentage=12.5") == ["Completed updating config for user bob."]
    assert _describe(java_tools, bootstrap, *bob) == ["Quota configs for user-principal 'bob' are request_percentage=12.5"]


# --- 3. kafka-producer-perf-test under a produce quota ------------------------------------------


def _perf_test(java_tools, bootstrap: str, topic: str, client_id: str, records: int, record_size: int):
    """ProducerPerformance as kafka-producer-perf-test.sh runs it, unthrottled on the client side,
    printing its producer's metrics at the end: (summary match, {metric: value}, all output)."""
    ran = java_tools.run(
        PRODUCER_PERFORMANCE, "--topic", topic, "--num-records", records, "--record-size", record_size,
        "--throughput", -1, "--print-metrics",
        "--producer-props", f"bootstrap.servers={bootstrap}", f"client.id={client_id}",
        timeout_s=90.0,
    )
    output = f"--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr[-3000:]}"
    summaries = [match for line in _lines(ran.stdout) if (match := PERF_SUMMARY.match(line))]
    assert len(summaries) == 1, output
    metrics = {match["name"]: match["value"] for line in _lines(ran.stdout) if (match := PERF_METRIC.match(line))}
    return summaries[0], metrics, output


def _end_offset(bootstrap: str, topic: str) -> int:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "odradek-compat-offsets"})
    try:
        _low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), timeout=30)
    finally:
        consumer.close()
    return high


def test_producer_perf_test_is_slowed_to_its_client_ids_produce_quota(start_broker, java_tools):
    """kafka-configs gives client id 'perf-throttled' producer_byte_rate=524288 (512 KiB/s); then
    kafka-producer-perf-test sends 3 MiB (3072 records of 1024 bytes) as fast as it can with that
    client id. Its summary line reports all 3072 records sent at no more than about 0.5 MB/sec (the
    tool's MB is MiB), and its producer metrics show the broker's throttle time. The same run with
    client id 'perf-free' is never throttled. Every record of both runs is in the topic."""
    broker = start_broker(**SMALL_WINDOW)
    bootstrap, topic = broker.bootstrap_servers, "perf-quota"
    records, record_size = 3072, 1024
    create_topic(bootstrap, topic)
    assert _add(java_tools, bootstrap, ("--entity-type", "clients", "--entity-name", "perf-throttled"),
                "producer_byte_rate=524288") == ["Completed updating config for client perf-throttled."]

    summary, metrics, output = _perf_test(java_tools, bootstrap, topic, "perf-throttled", records, record_size)
    assert int(summary["records"]) == records, output
    # Request bytes count against the quota, and they exceed the payload the tool counts. After the
    # one-second burst the window allows, 3 MiB at 0.5 MiB/s takes at least 5 s: at most ~0.6
    # MiB/s. Load can only slow the run, so the bound is an upper one, with a margin on top.
    assert float(summary["mb_per_second"]) <= 0.5 * 1.5, output
    assert float(metrics["producer-metrics:produce-throttle-time-max:{client-id=perf-throttled}"]) > 0, output
    assert metrics["producer-metrics:record-send-total:{client-id=perf-throttled}"] == f"{records}.000", output
    assert metrics["producer-metrics:record-error-total:{client-id=perf-throttled}"] == "0.000", output

    # another client id has no quota: however fast or slow the machine, never a throttle time
    summary, metrics, output = _perf_test(java_tools, bootstrap, topic, "perf-free", records, record_size)
    assert int(summary["records"]) == records, output
    assert metrics["producer-metrics:produce-throttle-time-max:{client-id=perf-free}"] == "0.000", output
    assert metrics["producer-metrics:record-error-total:{client-id=perf-free}"] == "0.000", output

    assert _end_offset(bootstrap, topic) == 2 * records


def test_kafka_topics_past_its_controller_mutation_rate_is_refused_until_the_bucket_refills(start_broker, java_tools,
                                                                                            tmp_path):
    """kafka-configs gives client id 'provisioner' controller_mutation_rate=5, with a token bucket of
    2 s (10 partitions). kafka-topics creates a 30-partition topic at once (the bucket had tokens),
    leaving it 20 short: the next create is refused with Kafka's message (TopicCommand turns off the
    admin client's own retry on this error, so that the operator sees it) and the client is told to
    wait. Once the bucket has refilled, the same command succeeds."""
    broker = start_broker(**{"controller.quota.window.num": 2, "controller.quota.window.size.seconds": 1})
    bootstrap = broker.bootstrap_servers
    assert _add(java_tools, bootstrap, ("--entity-type", "clients", "--entity-name", "provisioner"),
                "controller_mutation_rate=5") == ["Completed updating config for client provisioner."]
    config = tmp_path / "admin.properties"
    config.write_text("client.id=provisioner\n")

    def create(topic: str, partitions: int, **kwargs):
        return java_tools.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--command-config", config,
                              "--create", "--topic", topic, "--partitions", partitions, timeout_s=60.0, **kwargs)

    started = time.monotonic()
    assert _lines(create("bulk", 30).stdout) == ["Created topic bulk."]
    refused = create("late", 5, check=False)
    assert refused.returncode == 1
    assert _lines(refused.stdout) == ["Error while executing topic command : The throttling quota has been exceeded."]
    assert re.search(r"Connection to node 0 is throttled for \d+ ms", refused.stderr), refused.stderr
    time.sleep(max(0.0, started + 4.5 - time.monotonic()))  # 20 tokens at 5 a second
    assert _lines(create("late", 5).stdout) == ["Created topic late."]
    listed = java_tools.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--topic", "bulk,late")
    assert "PartitionCount: 30" in listed.stdout and "PartitionCount: 5" in listed.stdout
