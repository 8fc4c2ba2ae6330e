"""The merged /metrics of a host's workers (odradek.web.host_view): what Prometheus reads from one
scrape of an `odradek server --workers N` host."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from odradek.web.host_view import merge_metrics

WORKER_1 = b"""# HELP kafka_server_brokertopicmetrics_messagesin_total Messages in
# TYPE kafka_server_brokertopicmetrics_messagesin_total counter
kafka_server_brokertopicmetrics_messagesin_total 10.0
# HELP kafka_log_log_size Bytes of each partition's log
# TYPE kafka_log_log_size gauge
kafka_log_log_size{topic="a",partition="0"} 100.0
kafka_log_log_size{topic="a",partition="1"} 200.0
"""
WORKER_2 = b"""# HELP kafka_server_brokertopicmetrics_messagesin_total Messages in
# TYPE kafka_server_brokertopicmetrics_messagesin_total counter
kafka_server_brokertopicmetrics_messagesin_total 5.0
# HELP kafka_log_log_size Bytes of each partition's log
# TYPE kafka_log_log_size gauge
kafka_log_log_size{topic="a",partition="2"} 300.0
# HELP odd_empty_labels No labels, written with braces
# TYPE odd_empty_labels gauge
odd_empty_labels{} 1.0
"""


def _samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_every_sample_gets_its_broker_id_and_each_family_one_help_and_type():
    merged = merge_metrics([(7000, WORKER_1), (7001, WORKER_2), (7002, None)])
    samples = _samples(merged)  # Prometheus's own parser accepts it
    assert samples[("kafka_server_brokertopicmetrics_messagesin_total", (("broker_id", "7000"),))] == 10.0
    assert samples[("kafka_server_brokertopicmetrics_messagesin_total", (("broker_id", "7001"),))] == 5.0
    assert samples[("kafka_log_log_size", (("broker_id", "7001"), ("partition", "2"), ("topic", "a")))] == 300.0
    assert samples[("odd_empty_labels", (("broker_id", "7001"),))] == 1.0
    assert {labels: value for (name, labels), value in samples.items() if name == "odradek_worker_up"} == {
        (("broker_id", "7000"),): 1.0, (("broker_id", "7001"),): 1.0, (("broker_id", "7002"),): 0.0}
    lines = merged.decode().splitlines()
    assert lines.count("# TYPE kafka_log_log_size gauge") == 1
    # A family's samples are together, from both workers, right after its TYPE line.
    start = lines.index("# TYPE kafka_log_log_size gauge")
    assert [line.split("{")[0] for line in lines[start + 1:start + 4]] == ["kafka_log_log_size"] * 3


def test_no_worker_answering_is_still_a_valid_scrape():
    samples = _samples(merge_metrics([(1, None), (2, None)]))
    assert samples == {("odradek_worker_up", (("broker_id", "1"),)): 0.0, ("odradek_worker_up", (("broker_id", "2"),)): 0.0}
