"""The admin REST API on metrics.listener, as an operator and their tools use it: topics, partitions,
configs, records and consumer groups over HTTP, agreeing with what Kafka clients see; the API held to
its own OpenAPI document by schemathesis, bad input included; and the broker's security on the
HTTP side (Basic logins as Kafka users, ACLs on what each one sees and does)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from conftest import BrokerProcess, free_port

from .clients import Record, create_topic, produce


def wait_for_http(base: str, timeout_s: float = 20.0) -> None:
    """The Kafka listener answers before the HTTP one is bound: wait for /health."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=5).read()
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def call(url: str, method: str = "GET", body=None, user: tuple[str, str] | None = None) -> tuple[int, dict | None]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if user is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _body(response)
    except urllib.error.HTTPError as error:
        return error.code, _body(error)


def _body(response) -> dict | None:
    raw = response.read()
    return json.loads(raw) if raw and response.headers.get("Content-Type", "").startswith("application/json") else None


@pytest.fixture(scope="module")
def rest(tmp_path_factory):
    port = free_port()
    process = BrokerProcess(tmp_path_factory.mktemp("rest"), {"metrics.listener": f"http://127.0.0.1:{port}",
                                                              "group.initial.rebalance.delay.ms": "0"})
    process.start()
    wait_for_http(f"http://127.0.0.1:{port}")
    status, clusters = call(f"http://127.0.0.1:{port}/api/v3/clusters")
    assert status == 200, clusters
    process.http = f"http://127.0.0.1:{port}"
    process.cluster_id = clusters["data"][0]["cluster_id"]
    process.api = f"{process.http}/api/v3/clusters/{process.cluster_id}"
    yield process
    assert process.stop() == 0, process.output()


def test_an_operator_manages_a_topic_and_its_records_over_http(rest):
    status, created = call(f"{rest.api}/topics", "POST", {"topic_name": "orders", "partitions_count": 3,
                                                          "configs": [{"name": "retention.ms", "value": "86400000"}]})
    assert status == 201, created
    assert created["partitions_count"] == 3 and created["kind"] == "KafkaTopic"
    assert call(f"{rest.api}/topics", "POST", {"topic_name": "orders"})[0] == 409
    status, refused = call(f"{rest.api}/topics", "POST", {"topic_name": "bad name!"})
    assert status == 400 and "INVALID_TOPIC_EXCEPTION" in refused["message"]

    # What a Kafka client sees of the topic is what the API says.
    metadata = AdminClient({"bootstrap.servers": rest.bootstrap_servers}).list_topics("orders", timeout=10)
    assert len(metadata.topics["orders"].partitions) == 3
    status, partitions = call(f"{rest.api}/topics/orders/partitions")
    assert status == 200 and [p["partition_id"] for p in partitions["data"]] == [0, 1, 2]
    assert all(p["leader_id"] == 0 and p["isr_ids"] == [0] and p["latest_offset"] == 0 for p in partitions["data"])
    status, page = call(f"{rest.api}/topics/orders/partitions?start=1&limit=1")
    assert [p["partition_id"] for p in page["data"]] == [1] and page["partitions_count"] == 3
    assert page["metadata"]["next"].endswith("/topics/orders/partitions?start=2&limit=1")

    # Records produced over HTTP reach Kafka consumers with their key and headers, and the other way round.
    status, produced = call(f"{rest.api}/topics/orders/records", "POST", {
        "partition_id": 1, "key": {"type": "STRING", "data": "order-1"},
        "value": {"type": "JSON", "data": {"item": "book", "count": 2}},
        "headers": [{"name": "source", "value": base64.b64encode(b"web").decode()}]})
    assert status == 200 and produced["partition_id"] == 1 and produced["offset"] == 0, produced
    produce("confluent", rest.bootstrap_servers, "orders",
            [Record(b"k%d" % i, b"plain text %d" % i, partition=1) for i in range(5)] + [Record(None, b"\xff\x00\x01", partition=1)])
    consumer = confluent_kafka.Consumer({"bootstrap.servers": rest.bootstrap_servers, "group.id": "reader",
                                         "auto.offset.reset": "earliest"})
    consumer.assign([confluent_kafka.TopicPartition("orders", 1, 0)])
    first = consumer.poll(15)
    consumer.close()
    assert first is not None and first.key() == b"order-1" and json.loads(first.value()) == {"item": "book", "count": 2}
    assert first.headers() == [("source", b"web")]

    status, page = call(f"{rest.api}/topics/orders/partitions/1/records?offset=0&limit=3")
    assert status == 200 and [r["offset"] for r in page["data"]] == [0, 1, 2] and page["next_offset"] == 3
    assert page["data"][0]["key"] == {"type": "STRING", "data": "order-1"}
    assert page["data"][0]["value"] == {"type": "JSON", "data": {"item": "book", "count": 2}}
    assert page["data"][0]["headers"] == [{"name": "source", "value": {"type": "STRING", "data": "web"}}]
    assert page["data"][1]["value"] == {"type": "STRING", "data": "plain text 0"}
    status, hexed = call(f"{rest.api}/topics/orders/partitions/1/records?offset=6&format=hex")
    assert hexed["data"][0]["value"] == {"type": "HEX", "data": "ff0001"} and hexed["metadata"]["next"] is None
    status, latest = call(f"{rest.api}/topics/orders/partitions/1/records?limit=2")
    assert [r["offset"] for r in latest["data"]] == [5, 6], "without a position, the newest records"
    status, by_time = call(f"{rest.api}/topics/orders/partitions/1/records?timestamp={page['data'][1]['timestamp_ms']}")
    assert by_time["data"][0]["offset"] <= 1
    status, future = call(f"{rest.api}/topics/orders/partitions/1/records?timestamp={int(time.time() * 1000) + 3_600_000}")
    assert status == 200 and future["data"] == []
    assert call(f"{rest.api}/topics/orders/partitions/1/records?limit=0")[0] == 400
    assert call(f"{rest.api}/topics/orders/partitions/7/records")[0] == 404

    # Configs: set, read back as a Kafka client would, reset.
    assert call(f"{rest.api}/topics/orders/configs/cleanup.policy", "PUT", {"value": "compact"})[0] == 204
    status, config = call(f"{rest.api}/topics/orders/configs/cleanup.policy")
    assert config["value"] == "compact" and config["source"] == "DYNAMIC_TOPIC_CONFIG" and not config["is_default"]
    kafka_admin = AdminClient({"bootstrap.servers": rest.bootstrap_servers})
    described = kafka_admin.describe_configs([confluent_kafka.admin.ConfigResource("topic", "orders")])
    assert next(iter(described.values())).result(timeout=10)["cleanup.policy"].value == "compact"
    assert call(f"{rest.api}/topics/orders/configs:alter", "POST", {"data": [
        {"name": "cleanup.policy", "operation": "DELETE"}, {"name": "segment.bytes", "value": "1048576"}]})[0] == 204
    status, configs = call(f"{rest.api}/topics/orders/configs")
    values = {c["name"]: c for c in configs["data"]}
    assert values["cleanup.policy"]["value"] == "delete" and values["segment.bytes"]["value"] == "1048576"
    status, refused = call(f"{rest.api}/topics/orders/configs/no.such.config", "PUT", {"value": "1"})
    assert status == 400 and "no.such.config" in refused["message"]

    # More partitions, then delete.
    status, grown = call(f"{rest.api}/topics/orders", "PATCH", {"partitions_count": 5})
    assert status == 200 and grown["partitions_count"] == 5
    assert call(f"{rest.api}/topics/orders", "PATCH", {"partitions_count": 2})[0] == 400
    assert call(f"{rest.api}/topics/orders", "DELETE")[0] == 204
    assert call(f"{rest.api}/topics/orders")[0] == 404


def test_a_groups_lag_is_the_log_end_minus_its_commits(rest):
    create_topic(rest.bootstrap_servers, "lagging", partitions=2)
    produce("confluent", rest.bootstrap_servers, "lagging", [Record(None, b"v", partition=i % 2) for i in range(100)])
    consumer = confluent_kafka.Consumer({"bootstrap.servers": rest.bootstrap_servers, "group.id": "slow-readers",
                                         "enable.auto.commit": False, "client.id": "reader-1"})
    consumer.subscribe(["lagging"])
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        consumer.commit(offsets=[confluent_kafka.TopicPartition("lagging", 0, 30),
                                 confluent_kafka.TopicPartition("lagging", 1, 50)], asynchronous=False)
        status, group = call(f"{rest.api}/consumer-groups/slow-readers")
        assert status == 200 and group["state"] == "STABLE", group
        status, consumers = call(f"{rest.api}/consumer-groups/slow-readers/consumers")
        assert consumers["data"][0]["client_id"] == "reader-1"
        assert sorted(a["partition_id"] for a in consumers["data"][0]["assignments"]) == [0, 1]
        status, lags = call(f"{rest.api}/consumer-groups/slow-readers/lags")
        by_partition = {lag["partition_id"]: lag for lag in lags["data"]}
        assert (by_partition[0]["current_offset"], by_partition[0]["log_end_offset"], by_partition[0]["lag"]) == (30, 50, 20)
        assert by_partition[1]["lag"] == 0 and by_partition[1]["client_id"] == "reader-1"
        status, summary = call(f"{rest.api}/consumer-groups/slow-readers/lag-summary")
        assert (summary["total_lag"], summary["max_lag"], summary["max_lag_partition_id"]) == (20, 20, 0)
        assert call(f"{rest.api}/consumer-groups/slow-readers", "DELETE")[0] == 409, "a group with members stays"
    finally:
        consumer.close()
    status, listed = call(f"{rest.api}/consumer-groups")
    assert "slow-readers" in [g["consumer_group_id"] for g in listed["data"]]
    assert call(f"{rest.api}/consumer-groups/slow-readers", "DELETE")[0] == 204
    assert call(f"{rest.api}/consumer-groups/slow-readers")[0] == 404


def test_bad_requests_get_a_clear_error_never_a_crash(rest):
    raw = urllib.request.Request(f"{rest.api}/topics", data=b"{not json", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as bad_json:
        urllib.request.urlopen(raw, timeout=10)
    assert bad_json.value.code == 400 and "not valid JSON" in json.loads(bad_json.value.read())["message"]
    assert call(f"{rest.http}/api/v3/clusters/not-this-one/topics")[0] == 404
    assert call(f"{rest.api}/topics", "POST", {"topic_name": "x", "partitions_count": 1_000_000})[0] == 400
    assert call(f"{rest.api}/topics", "POST", {"topic_name": "x", "replication_factor": 5})[0] == 400
    assert call(f"{rest.api}/brokers/7")[0] == 404
    assert call(f"{rest.api}/topics/none/records", "POST", {"value": {"type": "AVRO", "data": 1}})[0] == 400
    status, missing = call(f"{rest.api}/topics/none/records", "POST", {"value": {"type": "STRING", "data": "x"}})
    assert status == 404 and "none" in missing["message"]
    status, wrong_method = call(f"{rest.api}/topics", "PUT", {})
    assert status == 405
    too_big = urllib.request.Request(f"{rest.api}/topics", data=b"x" * (2 * 1024 * 1024), method="POST")
    with pytest.raises((urllib.error.HTTPError, ConnectionError)) as huge:
        urllib.request.urlopen(too_big, timeout=10)
    assert getattr(huge.value, "code", 413) == 413


def test_the_api_keeps_to_its_openapi_document(rest, tmp_path):
    """schemathesis generates valid and invalid requests for every operation from
    /api/openapi.json and checks every answer: no server error, documented statuses and
    bodies, invalid input refused. Not checked: that every schema-valid request succeeds
    (Kafka refuses some, e.g. more replicas than brokers, with a 4xx the schema cannot foresee)."""
    for name in ("present", "present2"):
        assert call(f"{rest.api}/topics", "POST", {"topic_name": name, "partitions_count": 2})[0] in (201, 409)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.cluster_id" = "{rest.cluster_id}"\n'
        '"path.topic_name" = { dictionary = "topics", probability = 0.5 }\n'
        "[dictionaries]\n"
        'topics = { values = ["present", "present2"] }\n'
    )
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
              "response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,"
              "use_after_free")
    result = subprocess.run(
        [cli, "--config-file", str(config), "run", f"{rest.http}/api/openapi.json", "--url", f"{rest.http}/api",
         "--checks", checks, "--max-examples", os.environ.get("ODRADEK_SCHEMATHESIS_EXAMPLES", "12"),
         "--workers", "1", "--request-timeout", "60", "--generation-deterministic", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    assert "Traceback" not in rest.output()


# -- security ----------------------------------------------------------------------------------------

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


def test_http_callers_log_in_as_kafka_users_and_see_what_their_acls_allow(tmp_path):
    http_port, sasl_port = free_port(), free_port()
    process = BrokerProcess(tmp_path, {
        "metrics.listener": f"http://127.0.0.1:{http_port}",
        "http.authentication.method": "BASIC",
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
    })
    process.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{process.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
    process.start()
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": "PLAIN", "sasl.username": "admin", "sasl.password": "admin-secret"})
        http = f"http://127.0.0.1:{http_port}"
        wait_for_http(http)
        adm, alice = ("admin", "admin-secret"), ("alice", "alice-secret")

        status, anonymous = call(f"{http}/api/v3/clusters")
        assert status == 401 and "Basic" in anonymous["message"]
        assert call(f"{http}/api/v3/clusters", user=("alice", "wrong"))[0] == 401
        assert call(f"{http}/health")[0] == 200 and call(f"{http}/api/openapi.json")[0] == 200, "open to orchestrators"
        status, clusters = call(f"{http}/api/v3/clusters", user=adm)
        assert status == 200
        api = f"{http}/api/v3/clusters/{clusters['data'][0]['cluster_id']}"

        assert call(f"{api}/topics", "POST", {"topic_name": "secret", "partitions_count": 1}, user=adm)[0] == 201
        assert call(f"{api}/topics", "POST", {"topic_name": "open", "partitions_count": 1}, user=adm)[0] == 201
        assert call(f"{api}/topics/open/records", "POST", {"value": {"type": "STRING", "data": "hello"}}, user=adm)[0] == 200

        # alice, with no ACLs, sees no topic and may do nothing.
        status, listed = call(f"{api}/topics", user=alice)
        assert status == 200 and listed["data"] == []
        assert call(f"{api}/topics/open", user=alice)[0] == 403
        assert call(f"{api}/topics", "POST", {"topic_name": "mine"}, user=alice)[0] == 403
        assert call(f"{http}/metrics", user=alice)[0] == 403
        assert call(f"{http}/metrics", user=adm)[0] == 200

        # Granted Describe and Read on "open": she sees and browses it, but may not write to it or see "secret".
        bindings = [AclBinding(ResourceType.TOPIC, "open", ResourcePatternType.LITERAL, "User:alice", "*", operation,
                               AclPermissionType.ALLOW) for operation in (AclOperation.DESCRIBE, AclOperation.READ)]
        for future in admin.create_acls(bindings).values():
            future.result(timeout=10)
        status, listed = call(f"{api}/topics", user=alice)
        assert [t["topic_name"] for t in listed["data"]] == ["open"]
        status, page = call(f"{api}/topics/open/partitions/0/records?offset=0", user=alice)
        assert status == 200 and page["data"][0]["value"]["data"] == "hello"
        status, refused = call(f"{api}/topics/open/records", "POST", {"value": {"type": "STRING", "data": "x"}}, user=alice)
        assert status == 403 and "WRITE" in refused["message"]
        assert call(f"{api}/topics/secret/partitions/0/records", user=alice)[0] == 403

        # A SCRAM user logs in with the password their credential was made from.
        upsert = UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-secret")
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=10)
        assert call(f"{api}/topics", user=("bob", "bob-secret"))[0] == 200
        assert call(f"{api}/topics", user=("bob", "not-bobs"))[0] == 401
    finally:
        assert process.stop() == 0, process.output()
