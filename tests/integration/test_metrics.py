"""The broker's Prometheus metrics and health endpoints (metrics.listener), checked against a known
workload: 10,000 records in is exactly 10,000 on the counter, the log end offsets add up to it,
a group's lag is the high watermark minus its committed offset, and its Burrow-style status
follows what its commits do. /health and /ready answer as orchestrators expect, and a slow HTTP
client holds nothing up."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import confluent_kafka
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import BrokerProcess, free_port

from .clients import Record, consume, create_topic, produce


@pytest.fixture
def metered(tmp_path):
    port = free_port()
    process = BrokerProcess(tmp_path, {"metrics.listener": f"http://127.0.0.1:{port}"})
    process.start()
    process.http = f"http://127.0.0.1:{port}"
    yield process
    assert process.stop() == 0, process.output()


def scrape(broker) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value."""
    text = urllib.request.urlopen(f"{broker.http}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_a_known_workload_is_counted_exactly(metered):
    create_topic(metered.bootstrap_servers, "counted", partitions=3)
    records = [Record(None, b"record %d" % i, partition=i % 3) for i in range(10_000)]
    produce("confluent", metered.bootstrap_servers, "counted", records)
    assert len(consume("confluent", metered.bootstrap_servers, "counted", range(3), 10_000)) == 10_000

    samples = scrape(metered)
    assert sample(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic="counted") == 10_000
    bytes_in = sample(samples, "kafka_server_brokertopicmetrics_bytesin_total", topic="counted")
    assert bytes_in > 10_000 * len(b"record 0")
    assert sample(samples, "kafka_server_brokertopicmetrics_bytesout_total", topic="counted") >= bytes_in
    assert sample(samples, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic="counted") == 0
    assert sum(sample(samples, "kafka_log_log_logendoffset", topic="counted", partition=str(p)) for p in range(3)) == 10_000
    assert all(sample(samples, "kafka_log_log_numlogsegments", topic="counted", partition=str(p)) == 1 for p in range(3))
    assert sample(samples, "kafka_log_log_size", topic="counted", partition="0") > 0
    assert sample(samples, "kafka_server_replicamanager_partitioncount") == sample(
        samples, "kafka_server_replicamanager_leadercount") >= 3
    assert sample(samples, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert sample(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1

    produced = sum(v for (name, labels), v in samples.items()
                   if name == "kafka_network_requestmetrics_requests_total" and ("request", "Produce") in labels)
    assert produced >= 1
    assert sample(samples, "odradek_request_total_time_seconds_count", request="Produce") == produced
    assert sample(samples, "odradek_request_total_time_seconds_count", request="FetchConsumer") >= 1
    assert sample(samples, "kafka_network_requestmetrics_totaltimems", request="Produce", quantile="0.99") > 0
    assert sample(samples, "kafka_server_socket_server_metrics_connection_count", listener="PLAINTEXT") >= 1


def _commit(bootstrap: str, group: str, offset: int) -> None:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[confluent_kafka.TopicPartition("lagging", 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def _status(samples, group: str) -> str:
    return next(status for (name, labels), value in samples.items()
                if name == "kafka_consumergroup_status" and ("consumergroup", group) in labels and value == 1
                for key, status in labels if key == "status")


def test_consumer_lag_and_status_follow_the_groups_commits(metered):
    create_topic(metered.bootstrap_servers, "lagging", partitions=1)
    produce("confluent", metered.bootstrap_servers, "lagging", [Record(None, b"x", partition=0)] * 100)

    _commit(metered.bootstrap_servers, "steady", 100)
    _commit(metered.bootstrap_servers, "stuck", 40)
    samples = scrape(metered)
    assert sample(samples, "kafka_consumergroup_lag", consumergroup="steady", topic="lagging", partition="0") == 0
    assert sample(samples, "kafka_consumergroup_lag", consumergroup="stuck", topic="lagging", partition="0") == 60
    assert sample(samples, "kafka_consumergroup_current_offset", consumergroup="stuck", topic="lagging", partition="0") == 40
    assert sample(samples, "kafka_consumergroup_lag_sum", consumergroup="stuck", topic="lagging") == 60
    assert _status(samples, "steady") == "OK"

    # 'stuck' keeps committing the same offset while records arrive: stalled
    for _ in range(3):
        time.sleep(0.3)
        _commit(metered.bootstrap_servers, "stuck", 40)
        samples = scrape(metered)
    assert _status(samples, "stuck") == "STALL"
    assert sample(samples, "kafka_consumergroup_lag", consumergroup="stuck", topic="lagging", partition="0") == 60

    # then it stops committing for longer than its commits spanned: stopped
    time.sleep(1.5)
    assert _status(scrape(metered), "stuck") == "STOP"


def test_health_ready_and_http_mistakes(metered):
    assert urllib.request.urlopen(f"{metered.http}/health", timeout=10).read() == b"ok\n"
    ready = urllib.request.urlopen(f"{metered.http}/ready", timeout=10)
    assert ready.status == 200 and b'"ready": true' in ready.read()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{metered.http}/nothing-here", timeout=10)
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as posted:
        urllib.request.urlopen(urllib.request.Request(f"{metered.http}/metrics", data=b"x", method="POST"), timeout=10)
    assert posted.value.code == 405

    # clients that connect and send nothing, or half a request, hold only their own slots
    host, port = metered.http.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(20)]
    for client in idle[:10]:
        client.sendall(b"GET /metr")
    started = time.monotonic()
    assert b"kafka_server_brokertopicmetrics_messagesin_total" in urllib.request.urlopen(
        f"{metered.http}/metrics", timeout=10).read()
    assert time.monotonic() - started < 5
    for client in idle:
        client.close()


def test_a_bad_metrics_listener_is_refused_in_one_line(tmp_path):
    process = BrokerProcess(tmp_path, {"metrics.listener": "https://0.0.0.0"})
    with pytest.raises(Exception):
        process.start()
    assert "invalid value 'https://0.0.0.0' for config 'metrics.listener'" in process.output()
    assert "Traceback" not in process.output()


def test_the_grafana_dashboard_asks_only_for_what_the_broker_serves(metered):
    """docs/grafana/odradek-dashboard.json works as is: every metric its queries name is one the
    broker exposes (after some produce, consume and a group's commit)."""
    import json
    import re
    from pathlib import Path

    create_topic(metered.bootstrap_servers, "lagging", partitions=1)
    produce("confluent", metered.bootstrap_servers, "lagging", [Record(None, b"x", partition=0)] * 10)
    _commit(metered.bootstrap_servers, "watched", 5)
    served = {name for name, _labels in scrape(metered)}
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs/grafana/odradek-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {name for query in queries for name in re.findall(r"\b((?:kafka|odradek)_[a-z_]+)", query)}
    assert asked and asked <= served, sorted(asked - served)


def test_requests_for_topics_that_do_not_exist_make_no_metrics_of_their_own(metered):
    """Produce and fetch naming 200 made-up topics are counted as failures in the broker total, but
    no per-topic series appear for them: a client cannot grow the broker's metrics (or its memory)
    by inventing topic names."""
    from .test_bad_input import batch, fetch_partition, produce_partition
    from .wire import WireClient

    with WireClient(metered.bootstrap_servers) as client:
        for index in range(100):
            assert produce_partition(client, f"made-up-{index}", 0, batch(b"x")).error_code != 0
            assert fetch_partition(client, f"made-up-fetch-{index}", 0).error_code != 0
    samples = scrape(metered)
    assert sample(samples, "kafka_server_brokertopicmetrics_failedproducerequests_total") >= 100
    assert sample(samples, "kafka_server_brokertopicmetrics_failedfetchrequests_total") >= 100
    assert not [labels for _name, labels in samples if any(k == "topic" and v.startswith("made-up") for k, v in labels)]
