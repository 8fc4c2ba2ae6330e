"""The OpenAPI 3.0 document of the REST API, served at /api/openapi.json: what rest_api.py answers,
request bodies with the limits it enforces, every response's shape, and the errors (the
{"error_code", "message"} body) any operation may give."""

from __future__ import annotations

MAX_PARTITIONS = 1000  # per create or PATCH through the REST API (a typo must not make a million); more over the Kafka API

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_INT = {"type": "integer"}
_NULLABLE_INT = {"type": "integer", "nullable": True}
_BOOL = {"type": "boolean"}
_RELATED = {"type": "object", "nullable": True, "required": ["related"], "properties": {"related": _STRING}}
_METADATA = {"type": "object", "required": ["self"], "properties": {"self": _STRING, "resource_name": _STRING}}
_LIST_METADATA = {"type": "object", "required": ["self"], "properties": {"self": _STRING, "next": _NULLABLE_STRING}}
_TOPIC_NAME = {"type": "string", "minLength": 1, "maxLength": 249, "pattern": "^[a-zA-Z0-9._-]+$"}


def _resource(kind: str, properties: dict, required: list[str]) -> dict:
    return {"type": "object", "required": ["kind", "metadata", *required],
            "properties": {"kind": {"type": "string", "enum": [kind]}, "metadata": _METADATA, **properties}}


def _list_of(kind: str, item: str) -> dict:
    return {"type": "object", "required": ["kind", "metadata", "data"],
            "properties": {"kind": {"type": "string", "enum": [kind]}, "metadata": _LIST_METADATA,
                           "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}}}


_CONFIG_PROPERTIES = {
    "cluster_id": _STRING, "name": _STRING, "value": _NULLABLE_STRING, "is_default": _BOOL, "is_read_only": _BOOL,
    "is_sensitive": _BOOL, "source": _STRING,
    "synonyms": {"type": "array", "items": {"type": "object", "properties": {
        "name": _STRING, "value": _NULLABLE_STRING, "source": _STRING}}},
}
_RECORD_DATA = {"type": "object", "nullable": True, "required": ["data"], "properties": {
    "type": {"type": "string", "enum": ["JSON", "STRING", "BINARY"]}, "data": {}}}
_SHOWN_DATA = {"type": "object", "nullable": True, "required": ["type", "data"], "properties": {
    "type": {"type": "string", "enum": ["JSON", "STRING", "BINARY", "HEX"]}, "data": {}}}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error_code", "message"],
              "properties": {"error_code": _INT, "message": _STRING}},
    "Cluster": _resource("KafkaCluster", {
        "cluster_id": _STRING, "controller": _RELATED, "acls": _RELATED, "brokers": _RELATED,
        "broker_configs": _RELATED, "consumer_groups": _RELATED, "topics": _RELATED,
        "partition_reassignments": _RELATED}, ["cluster_id"]),
    "ClusterList": _list_of("KafkaClusterList", "Cluster"),
    "Broker": _resource("KafkaBroker", {
        "cluster_id": _STRING, "broker_id": _INT, "host": _STRING, "port": _INT, "rack": _NULLABLE_STRING,
        "configs": _RELATED, "partition_replicas": _RELATED}, ["broker_id", "host", "port"]),
    "BrokerList": _list_of("KafkaBrokerList", "Broker"),
    "BrokerConfig": _resource("KafkaBrokerConfig", {**_CONFIG_PROPERTIES, "broker_id": _INT}, ["name"]),
    "BrokerConfigList": _list_of("KafkaBrokerConfigList", "BrokerConfig"),
    "TopicConfig": _resource("KafkaTopicConfig", {**_CONFIG_PROPERTIES, "topic_name": _STRING}, ["name"]),
    "TopicConfigList": _list_of("KafkaTopicConfigList", "TopicConfig"),
    "Topic": _resource("KafkaTopic", {
        "cluster_id": _STRING, "topic_name": _STRING, "is_internal": _BOOL, "replication_factor": _INT,
        "partitions_count": _INT, "partitions": _RELATED, "configs": _RELATED, "partition_reassignments": _RELATED,
        "authorized_operations": {"type": "array", "items": _STRING},
        "under_replicated_partitions": _INT, "offline_partitions": _INT}, ["topic_name", "partitions_count"]),
    "TopicList": _list_of("KafkaTopicList", "Topic"),
    "Partition": _resource("KafkaPartition", {
        "cluster_id": _STRING, "topic_name": _STRING, "partition_id": _INT, "leader": _RELATED, "replicas": _RELATED,
        "reassignment": _RELATED, "leader_id": _NULLABLE_INT,
        "replica_ids": {"type": "array", "items": _INT}, "isr_ids": {"type": "array", "items": _INT},
        "earliest_offset": _NULLABLE_INT, "latest_offset": _NULLABLE_INT}, ["topic_name", "partition_id"]),
    "PartitionList": {**_list_of("KafkaPartitionList", "Partition"),
                      "properties": {**_list_of("KafkaPartitionList", "Partition")["properties"],
                                     "partitions_count": _INT}},
    "Replica": _resource("KafkaReplica", {
        "cluster_id": _STRING, "topic_name": _STRING, "partition_id": _INT, "broker_id": _INT, "is_leader": _BOOL,
        "is_in_sync": _BOOL, "broker": _RELATED}, ["broker_id", "is_leader", "is_in_sync"]),
    "ReplicaList": _list_of("KafkaReplicaList", "Replica"),
    "Record": {"type": "object", "required": ["partition_id", "offset", "key", "value", "headers"], "properties": {
        "partition_id": _INT, "offset": _INT, "timestamp": _NULLABLE_STRING, "timestamp_ms": _INT,
        "key": _SHOWN_DATA, "value": _SHOWN_DATA,
        "headers": {"type": "array", "items": {"type": "object", "properties": {"name": _STRING, "value": _SHOWN_DATA}}}}},
    "RecordList": {"type": "object", "required": ["kind", "metadata", "data", "next_offset"], "properties": {
        "kind": {"type": "string", "enum": ["KafkaRecordList"]}, "metadata": _LIST_METADATA,
        "topic_name": _STRING, "partition_id": _INT, "earliest_offset": _INT, "latest_offset": _INT,
        "next_offset": _INT, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}}}},
    "ProduceResponse": {"type": "object", "required": ["error_code", "topic_name", "partition_id", "offset"], "properties": {
        "error_code": _INT, "cluster_id": _STRING, "topic_name": _STRING, "partition_id": _INT, "offset": _INT,
        "timestamp": _NULLABLE_STRING,
        "key": {"type": "object", "nullable": True, "properties": {"type": _STRING, "size": _INT}},
        "value": {"type": "object", "nullable": True, "properties": {"type": _STRING, "size": _INT}}}},
    "ConsumerGroup": _resource("KafkaConsumerGroup", {
        "cluster_id": _STRING, "consumer_group_id": _STRING, "is_simple": _BOOL, "partition_assignor": _NULLABLE_STRING,
        "state": _STRING, "type": _NULLABLE_STRING, "coordinator": _RELATED, "consumers": _RELATED,
        "lag_summary": _RELATED}, ["consumer_group_id", "state"]),
    "ConsumerGroupList": _list_of("KafkaConsumerGroupList", "ConsumerGroup"),
    "Consumer": _resource("KafkaConsumer", {
        "cluster_id": _STRING, "consumer_group_id": _STRING, "consumer_id": _STRING, "instance_id": _NULLABLE_STRING,
        "client_id": _STRING, "client_host": _STRING,
        "assignments": {"type": "array", "items": {"type": "object", "properties": {
            "topic_name": _STRING, "partition_id": _INT}}}}, ["consumer_id"]),
    "ConsumerList": _list_of("KafkaConsumerList", "Consumer"),
    "ConsumerLag": _resource("KafkaConsumerLag", {
        "cluster_id": _STRING, "consumer_group_id": _STRING, "topic_name": _STRING, "partition_id": _INT,
        "current_offset": _NULLABLE_INT, "log_end_offset": _NULLABLE_INT, "lag": _NULLABLE_INT,
        "consumer_id": _STRING, "instance_id": _NULLABLE_STRING, "client_id": _STRING},
        ["topic_name", "partition_id", "lag"]),
    "ConsumerLagList": _list_of("KafkaConsumerLagList", "ConsumerLag"),
    "ConsumerGroupLagSummary": _resource("KafkaConsumerGroupLagSummary", {
        "cluster_id": _STRING, "consumer_group_id": _STRING, "max_lag_consumer_id": _STRING,
        "max_lag_instance_id": _NULLABLE_STRING, "max_lag_client_id": _STRING, "max_lag_topic_name": _STRING,
        "max_lag_partition_id": _INT, "max_lag": _INT, "total_lag": _INT, "max_lag_consumer": _RELATED,
        "max_lag_partition": _RELATED}, ["max_lag", "total_lag"]),
    "Throughput": {"type": "object", "required": ["node_id", "time_ms", "messages_in", "bytes_in", "bytes_out"],
                   "properties": {"node_id": _INT, "time_ms": _INT, "messages_in": _INT, "bytes_in": _INT,
                                  "bytes_out": _INT}},
    "CreateTopicRequest": {"type": "object", "required": ["topic_name"], "properties": {
        "topic_name": _TOPIC_NAME,
        "partitions_count": {"type": "integer", "minimum": 1, "maximum": MAX_PARTITIONS},
        "replication_factor": {"type": "integer", "minimum": 1, "maximum": 32767},
        "configs": {"type": "array", "items": {"type": "object", "required": ["name", "value"], "properties": {
            "name": {"type": "string", "minLength": 1}, "value": _NULLABLE_STRING}}},
        "validate_only": _BOOL}},
    "UpdateTopicRequest": {"type": "object", "required": ["partitions_count"], "properties": {
        "partitions_count": {"type": "integer", "minimum": 1, "maximum": MAX_PARTITIONS}}},
    "UpdateConfigRequest": {"type": "object", "required": ["value"], "properties": {"value": _STRING}},
    "AlterConfigBatchRequest": {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1}, "value": _STRING,
            "operation": {"type": "string", "enum": ["SET", "DELETE", "set", "delete"]}}}},
        "validate_only": _BOOL}},
    "ProduceRequest": {"type": "object", "properties": {
        "partition_id": {"type": "integer", "minimum": 0, "nullable": True}, "key": _RECORD_DATA, "value": _RECORD_DATA,
        "headers": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": _STRING, "value": {"type": "string", "format": "byte", "nullable": True}}}},
        "timestamp": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "minimum": 0}],
                      "nullable": True}}},
}

_ERRORS = {"default": {"description": "An error: 4xx for what the request asked, 5xx when the cluster could not do it",
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}


def _ok(schema: str | None, status: str = "200", description: str = "OK") -> dict:
    if schema is None:
        return {status: {"description": description}, **_ERRORS}
    return {status: {"description": description,
                     "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}, **_ERRORS}


def _path(name: str, schema: dict | None = None, description: str = "") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or _STRING, "description": description}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _op(operation_id: str, summary: str, responses: dict, parameters=(), body: str | None = None, tag: str = "") -> dict:
    op = {"operationId": operation_id, "summary": summary, "tags": [tag] if tag else [], "responses": responses}
    if parameters:
        op["parameters"] = list(parameters)
    if body:
        op["requestBody"] = _body(body)
    return op


CLUSTER = _path("cluster_id", description="the cluster id (GET /api/v3/clusters lists it)")
BROKER = _path("broker_id", {"type": "integer", "minimum": 0})
TOPIC = _path("topic_name", _TOPIC_NAME)
PARTITION = _path("partition_id", {"type": "integer", "minimum": 0})
CONFIG = _path("name", {"type": "string", "minLength": 1}, "the config's name")
GROUP = _path("consumer_group_id", {"type": "string", "minLength": 1})
VALIDATE_ONLY = _query("validate_only", {"type": "boolean"}, "check the change without making it")


def document() -> dict:
    c = "/v3/clusters/{cluster_id}"
    paths = {
        "/v3/clusters": {"get": _op("listClusters", "The cluster this broker belongs to", _ok("ClusterList"), tag="Cluster")},
        c: {"get": _op("getCluster", "The cluster", _ok("Cluster"), [CLUSTER], tag="Cluster")},
        c + "/brokers": {"get": _op("listBrokers", "The live brokers", _ok("BrokerList"), [CLUSTER], tag="Broker")},
        c + "/brokers/{broker_id}": {"get": _op("getBroker", "One broker", _ok("Broker"), [CLUSTER, BROKER], tag="Broker")},
        c + "/brokers/{broker_id}/configs": {"get": _op(
            "listBrokerConfigs", "A broker's configs (needs DescribeConfigs on the cluster)", _ok("BrokerConfigList"),
            [CLUSTER, BROKER], tag="Configs")},
        c + "/brokers/{broker_id}/configs:alter": {"post": _op(
            "alterBrokerConfigs", "Set and reset dynamic broker configs in one change (AlterConfigs on the cluster)",
            _ok(None, "204", "Changed"), [CLUSTER, BROKER, VALIDATE_ONLY], "AlterConfigBatchRequest", tag="Configs")},
        c + "/brokers/{broker_id}/configs/{name}": {
            "get": _op("getBrokerConfig", "One broker config", _ok("BrokerConfig"), [CLUSTER, BROKER, CONFIG], tag="Configs"),
            "put": _op("updateBrokerConfig", "Set a dynamic broker config", _ok(None, "204", "Set"),
                       [CLUSTER, BROKER, CONFIG, VALIDATE_ONLY], "UpdateConfigRequest", tag="Configs"),
            "delete": _op("resetBrokerConfig", "Reset a dynamic broker config to its static or default value",
                          _ok(None, "204", "Reset"), [CLUSTER, BROKER, CONFIG, VALIDATE_ONLY], tag="Configs")},
        c + "/topics": {
            "get": _op("listTopics", "The topics the caller may describe", _ok("TopicList"), [CLUSTER], tag="Topic"),
            "post": _op("createTopic", "Create a topic (Create on the cluster or the topic); 200 when validate_only",
                        {**_ok("Topic", "201", "Created"), **_ok("Topic", "200", "Valid (validate_only)")},
                        [CLUSTER], "CreateTopicRequest", tag="Topic")},
        c + "/topics/{topic_name}": {
            "get": _op("getTopic", "One topic", _ok("Topic"), [CLUSTER, TOPIC], tag="Topic"),
            "patch": _op("updateTopicPartitions", "Raise a topic's partition count (Alter on the topic)", _ok("Topic"),
                         [CLUSTER, TOPIC], "UpdateTopicRequest", tag="Topic"),
            "delete": _op("deleteTopic", "Delete a topic (Delete on the topic)", _ok(None, "204", "Deleted"),
                          [CLUSTER, TOPIC], tag="Topic")},
        c + "/topics/{topic_name}/partitions": {"get": _op(
            "listPartitions", "A topic's partitions with leader, replicas, ISR and offsets (all, or a page)",
            _ok("PartitionList"),
            [CLUSTER, TOPIC, _query("start", {"type": "integer", "minimum": 0}, "the first partition id of the page"),
             _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "most partitions in the page")],
            tag="Partition")},
        c + "/topics/{topic_name}/partitions/{partition_id}": {"get": _op(
            "getPartition", "One partition", _ok("Partition"), [CLUSTER, TOPIC, PARTITION], tag="Partition")},
        c + "/topics/{topic_name}/partitions/{partition_id}/replicas": {"get": _op(
            "listReplicas", "A partition's replicas, leader and in-sync", _ok("ReplicaList"), [CLUSTER, TOPIC, PARTITION],
            tag="Partition")},
        c + "/topics/{topic_name}/partitions/{partition_id}/records": {"get": _op(
            "browseRecords", "Read records of a partition (Read on the topic; odradek's own)", _ok("RecordList"),
            [CLUSTER, TOPIC, PARTITION,
             _query("offset", {"type": "integer", "minimum": 0}, "the first offset to show"),
             _query("timestamp", {"type": "integer", "minimum": 0},
                    "show records from the first one at or after this time (ms since the epoch)"),
             _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "most records to show (default 50)"),
             _query("format", {"type": "string", "enum": ["auto", "text", "json", "hex", "base64"]},
                    "how keys, values and headers are shown (auto: JSON, else text, else hex)")],
            tag="Records")},
        c + "/topics/{topic_name}/records": {"post": _op(
            "produceRecord", "Produce one record, acknowledged by all in-sync replicas (Write on the topic)",
            _ok("ProduceResponse"), [CLUSTER, TOPIC], "ProduceRequest", tag="Records")},
        c + "/topics/{topic_name}/configs": {"get": _op(
            "listTopicConfigs", "A topic's configs (DescribeConfigs on the topic)", _ok("TopicConfigList"),
            [CLUSTER, TOPIC], tag="Configs")},
        c + "/topics/{topic_name}/configs:alter": {"post": _op(
            "alterTopicConfigs", "Set and reset topic configs in one change (AlterConfigs on the topic)",
            _ok(None, "204", "Changed"), [CLUSTER, TOPIC, VALIDATE_ONLY], "AlterConfigBatchRequest", tag="Configs")},
        c + "/topics/{topic_name}/configs/{name}": {
            "get": _op("getTopicConfig", "One topic config", _ok("TopicConfig"), [CLUSTER, TOPIC, CONFIG], tag="Configs"),
            "put": _op("updateTopicConfig", "Set a topic config", _ok(None, "204", "Set"),
                       [CLUSTER, TOPIC, CONFIG, VALIDATE_ONLY], "UpdateConfigRequest", tag="Configs"),
            "delete": _op("resetTopicConfig", "Reset a topic config to the broker's", _ok(None, "204", "Reset"),
                          [CLUSTER, TOPIC, CONFIG, VALIDATE_ONLY], tag="Configs")},
        c + "/consumer-groups": {"get": _op(
            "listConsumerGroups", "The groups the caller may describe", _ok("ConsumerGroupList"), [CLUSTER],
            tag="Consumer Group")},
        c + "/consumer-groups/{consumer_group_id}": {
            "get": _op("getConsumerGroup", "One group", _ok("ConsumerGroup"), [CLUSTER, GROUP], tag="Consumer Group"),
            "delete": _op("deleteConsumerGroup", "Delete an empty group and its offsets (Delete on the group)",
                          _ok(None, "204", "Deleted"), [CLUSTER, GROUP], tag="Consumer Group")},
        c + "/consumer-groups/{consumer_group_id}/consumers": {"get": _op(
            "listConsumers", "A group's members and their partitions", _ok("ConsumerList"), [CLUSTER, GROUP],
            tag="Consumer Group")},
        c + "/consumer-groups/{consumer_group_id}/lags": {"get": _op(
            "listConsumerLags", "The group's lag per partition: log end offset minus committed offset",
            _ok("ConsumerLagList"), [CLUSTER, GROUP], tag="Consumer Group")},
        c + "/consumer-groups/{consumer_group_id}/lag-summary": {"get": _op(
            "getConsumerGroupLagSummary", "The group's largest and total lag", _ok("ConsumerGroupLagSummary"),
            [CLUSTER, GROUP], tag="Consumer Group")},
        "/odradek/throughput": {"get": _op(
            "getThroughput", "This broker's running totals of records and bytes in and out (odradek's own)",
            _ok("Throughput"), tag="Broker")},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "odradek admin REST API", "version": "3",
                 "description": "The admin operations of an odradek (Kafka-compatible) cluster, in the shape of "
                                "Confluent's REST Proxy v3, served by every broker on metrics.listener."},
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "security": [{}, {"basic": []}],
    }
