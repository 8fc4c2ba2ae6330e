"""What an operator watching a 3-broker cluster over HTTP sees while a broker is away and catches up:
under-replicated partitions in each broker's /metrics and in the REST API, the returning broker's
/ready answering 503 ("catching up") until it is back in every ISR, then 200, and the ISR
expansions counted. The catch-up is slowed with Kafka's replication throttle (set through the REST
API) so that it can be watched."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from integration.clients import Record, produce

from .load import wait_for
from .test_replication import create_replicated_topic


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def send(url: str, method: str, body=None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def metric(http: str, name: str) -> float:
    """The unlabelled sample `name` of one broker's /metrics."""
    status, text = get(f"{http}/metrics")
    assert status == 200, text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    raise AssertionError(f"{name} not in {http}/metrics")


def test_under_replicated_partitions_and_readiness_while_a_broker_catches_up(cluster):
    brokers = cluster(0)
    http = {}
    for node_id in (1, 2, 3):
        http[node_id] = f"http://127.0.0.1:{free_port()}"
        brokers.add_broker(node_id, **{"metrics.listener": http[node_id]})
    brokers.wait_until_formed()
    for node_id in (1, 2, 3):
        wait_for(lambda n=node_id: get(f"{http[n]}/ready")[0] == 200, 30, f"broker {node_id} ready")
    create_replicated_topic(brokers.bootstrap_servers, "watched", 3, **{"min.insync.replicas": "2"})
    produce("confluent", brokers.bootstrap_servers, "watched", [Record(None, b"x" * 100, partition=i % 3) for i in range(300)])

    under_replicated = "kafka_server_replicamanager_underreplicatedpartitions"
    wait_for(lambda: all(metric(http[n], under_replicated) == 0 for n in (1, 2, 3)), 30, "no partition under-replicated")
    _, clusters = get(f"{http[1]}/api/v3/clusters")
    api = f"{http[1]}/api/v3/clusters/{json.loads(clusters)['data'][0]['cluster_id']}"
    expands_before = sum(metric(http[n], "kafka_server_replicamanager_isrexpands_total") for n in (1, 2))

    # Broker 3 goes away: the leaders (1 and 2) report every partition under-replicated.
    assert brokers.broker(3).stop(timeout_s=30) == 0
    wait_for(lambda: metric(http[1], under_replicated) + metric(http[2], under_replicated) == 3, 30,
             "the 3 partitions under-replicated on their leaders")
    _, topic = get(f"{api}/topics/watched")
    assert json.loads(topic)["under_replicated_partitions"] == 3
    _, partitions = get(f"{api}/topics/watched/partitions")
    assert all(3 not in p["isr_ids"] and 3 in p["replica_ids"] for p in json.loads(partitions)["data"])

    # It misses 3 MB, and its leaders will send it at most 300 KB/s each while it is out of the ISR.
    produce("confluent", brokers.bootstrap_servers, "watched",
            [Record(None, bytes(1024), partition=i % 3) for i in range(3000)])
    assert send(f"{api}/topics/watched/configs/leader.replication.throttled.replicas", "PUT", {"value": "*"}) == 204
    for node_id in (1, 2):
        assert send(f"{api}/brokers/{node_id}/configs/leader.replication.throttled.rate", "PUT", {"value": "300000"}) == 204

    brokers.broker(3).start()
    wait_for(lambda: get(f"{http[3]}/health")[0] == 200, 30, "broker 3's HTTP side up")
    seen: list[tuple[int, str]] = []

    def catching_up() -> bool:
        seen.append(get(f"{http[3]}/ready"))
        return seen[-1][0] == 503 and "catching up" in seen[-1][1]

    wait_for(catching_up, 30, "broker 3 not ready while it catches up")
    assert json.loads(seen[-1][1])["ready"] is False

    # Throttle lifted: it catches up, comes back into every ISR and is ready.
    assert send(f"{api}/topics/watched/configs/leader.replication.throttled.replicas", "DELETE") == 204
    for node_id in (1, 2):
        assert send(f"{api}/brokers/{node_id}/configs/leader.replication.throttled.rate", "DELETE") == 204
    wait_for(lambda: get(f"{http[3]}/ready")[0] == 200, 60, "broker 3 ready again")
    wait_for(lambda: all(metric(http[n], under_replicated) == 0 for n in (1, 2, 3)), 30, "no partition under-replicated")
    assert sum(metric(http[n], "kafka_server_replicamanager_isrexpands_total") for n in (1, 2)) >= expands_before + 3
    _, partitions = get(f"{api}/topics/watched/partitions")
    assert all(sorted(p["isr_ids"]) == [1, 2, 3] for p in json.loads(partitions)["data"])
