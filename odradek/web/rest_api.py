"""The admin REST API under /api/v3, in the shape of Confluent's REST Proxy v3 (kinds, `metadata.self`,
`related` links, {"error_code", "message"} errors) where it covers the same resource, so tools that
speak it work: clusters, brokers and their configs, topics (create, delete, more partitions),
partitions with leader and ISR, replicas, topic configs, consumer groups with their consumers and
lag, and producing a record. Browsing records (by offset or time, shown as text, JSON or hex) is
odradek's own: GET .../topics/{topic}/partitions/{partition}/records.

Every operation goes through a Kafka client connected to this broker's inter-broker listener, so
it reaches the controller, the partition leaders and the group coordinators of the whole cluster
as any client would; the caller's own rights are checked first against the broker's ACLs
(http_auth.HttpAuthorizer). Work per request is bounded: lists are one Metadata answer, a record
page at most MAX_RECORDS records and MAX_PAGE_BYTES bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import json
import logging
import time
from collections.abc import Callable

from odradek.client import EARLIEST, LATEST, Admin, KafkaClient, NewTopic, Producer
from odradek.client.consumer import fetch, list_offsets
from odradek.client.errors import ClientError
from odradek.client.metadata import BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition
from odradek.security.acl import Operation, ResourceType
from odradek.web.http_auth import HttpAuthorizer
from odradek.web.http_server import HttpError, HttpRequest, HttpResponse, Router, json_response
from odradek.web.openapi import MAX_PARTITIONS

log = logging.getLogger(__name__)

BASE = "/api/v3"
RESOURCE_TOPIC, RESOURCE_BROKER = 2, 4
MAX_RECORDS = 1000
MAX_PAGE_PARTITIONS = 10_000
DEFAULT_RECORDS = 50
MAX_PAGE_BYTES = 4 * 1024 * 1024
MAX_OFFSET = 2**63 - 1

# Kafka errors as HTTP statuses (the message keeps Kafka's error name)
_STATUS = {
    ErrorCode.unknown_topic_or_partition: 404, ErrorCode.group_id_not_found: 404,
    ErrorCode.topic_already_exists: 409, ErrorCode.non_empty_group: 409,
    ErrorCode.topic_authorization_failed: 403, ErrorCode.group_authorization_failed: 403,
    ErrorCode.cluster_authorization_failed: 403, ErrorCode.sasl_authentication_failed: 503,
    ErrorCode.invalid_topic_exception: 400, ErrorCode.invalid_partitions: 400,
    ErrorCode.invalid_replication_factor: 400, ErrorCode.invalid_replica_assignment: 400,
    ErrorCode.invalid_config: 400, ErrorCode.invalid_request: 400, ErrorCode.policy_violation: 400,
    ErrorCode.unknown_topic_id: 404, ErrorCode.record_list_too_large: 413, ErrorCode.message_too_large: 413,
    ErrorCode.invalid_record: 400, ErrorCode.corrupt_message: 400, ErrorCode.topic_deletion_disabled: 400,
    ErrorCode.invalid_group_id: 400, ErrorCode.offset_out_of_range: 416,
}


_COORDINATOR_MOVED = frozenset({ErrorCode.not_coordinator, ErrorCode.coordinator_not_available,
                                ErrorCode.coordinator_load_in_progress})


def kafka_http_error(error: KafkaError) -> HttpError:
    status = _STATUS.get(error.code, 503 if error.code.name.endswith(("not_available", "timed_out", "not_controller",
                                                                       "load_in_progress", "not_enough_replicas",
                                                                       "not_leader_or_follower", "not_coordinator"))
                         else 500)
    message = error.message or error.code.name
    name = error.code.name.upper()
    return HttpError(status, message if name in message else f"{name}: {message}")


def _int(value: str, what: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HttpError(400, f"{what} must be an integer, not {value!r}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise HttpError(400, f"{what} must be {bounds}, not {number}")
    return number


def _iso(ms: int) -> str | None:
    if ms is None or ms < 0:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RestApi:
    def __init__(self, cluster_id: str, bootstrap: str, security, node_id: int,
                 authorizer_of: Callable[[], object | None], image_of: Callable[[], object],
                 local_offsets: Callable[[TopicPartition], tuple[int, int] | None]) -> None:
        self.cluster_id = cluster_id
        self._image_of = image_of
        self._local_offsets = local_offsets
        self._client_factory = lambda: KafkaClient(bootstrap, client_id=f"odradek-http-{node_id}", security=security)
        self._authorizer_of = authorizer_of
        self._client: KafkaClient | None = None
        self._starting = asyncio.Lock()

    def routes(self, router: Router, wrap) -> None:
        """Add every operation to `router`; `wrap(handler)` supplies the request's authorizer."""
        c = BASE + "/clusters/{cluster_id}"
        table = [
            ("GET", BASE + "/clusters", self.list_clusters),
            ("GET", c, self.get_cluster),
            ("GET", c + "/brokers", self.list_brokers),
            ("GET", c + "/brokers/{broker_id}", self.get_broker),
            ("GET", c + "/brokers/{broker_id}/configs", self.list_broker_configs),
            ("POST", c + "/brokers/{broker_id}/configs:alter", self.alter_broker_configs),
            ("GET", c + "/brokers/{broker_id}/configs/{name}", self.get_broker_config),
            ("PUT", c + "/brokers/{broker_id}/configs/{name}", self.set_broker_config),
            ("DELETE", c + "/brokers/{broker_id}/configs/{name}", self.reset_broker_config),
            ("GET", c + "/topics", self.list_topics),
            ("POST", c + "/topics", self.create_topic),
            ("GET", c + "/topics/{topic_name}", self.get_topic),
            ("PATCH", c + "/topics/{topic_name}", self.update_topic),
            ("DELETE", c + "/topics/{topic_name}", self.delete_topic),
            ("GET", c + "/topics/{topic_name}/partitions", self.list_partitions),
            ("GET", c + "/topics/{topic_name}/partitions/{partition_id}", self.get_partition),
            ("GET", c + "/topics/{topic_name}/partitions/{partition_id}/replicas", self.list_replicas),
            ("GET", c + "/topics/{topic_name}/partitions/{partition_id}/records", self.browse_records),
            ("GET", c + "/topics/{topic_name}/configs", self.list_topic_configs),
            ("POST", c + "/topics/{topic_name}/configs:alter", self.alter_topic_configs),
            ("GET", c + "/topics/{topic_name}/configs/{name}", self.get_topic_config),
            ("PUT", c + "/topics/{topic_name}/configs/{name}", self.set_topic_config),
            ("DELETE", c + "/topics/{topic_name}/configs/{name}", self.reset_topic_config),
            ("POST", c + "/topics/{topic_name}/records", self.produce_record),
            ("GET", c + "/consumer-groups", self.list_groups),
            ("GET", c + "/consumer-groups/{consumer_group_id}", self.get_group),
            ("DELETE", c + "/consumer-groups/{consumer_group_id}", self.delete_group),
            ("GET", c + "/consumer-groups/{consumer_group_id}/consumers", self.list_consumers),
            ("GET", c + "/consumer-groups/{consumer_group_id}/lags", self.list_lags),
            ("GET", c + "/consumer-groups/{consumer_group_id}/lag-summary", self.lag_summary),
        ]
        for method, pattern, handler in table:
            router.add(method, pattern, wrap(self._guarded(handler)))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _guarded(self, handler):
        """Check the cluster id, start the client, turn client failures into HTTP errors."""
        async def guarded(request: HttpRequest, auth: HttpAuthorizer, cluster_id: str | None = None, **params):
            if cluster_id is not None and cluster_id != self.cluster_id:
                raise HttpError(404, f"no cluster {cluster_id!r} here (this is cluster {self.cluster_id})")
            try:
                return await handler(request, auth, **params)
            except KafkaError as error:
                raise kafka_http_error(error) from None
            except ClientError as error:
                raise HttpError(503, f"the cluster did not answer: {error}") from None
            except asyncio.TimeoutError:
                raise HttpError(504, "the cluster did not answer in time") from None
        return guarded

    async def client(self) -> KafkaClient:
        async with self._starting:
            if self._client is None:
                client = self._client_factory()
                await client.start()
                self._client = client
            return self._client

    def _url(self, request: HttpRequest, path: str) -> str:
        host = request.headers.get("host") or "localhost"
        return f"http://{host}{BASE}/clusters/{self.cluster_id}{path}"

    def _resource(self, request: HttpRequest, kind: str, path: str, crn: str, **fields) -> dict:
        return {"kind": kind, "metadata": {"self": self._url(request, path),
                                           "resource_name": f"crn:///kafka={self.cluster_id}{crn}"}, **fields}

    def _list(self, request: HttpRequest, kind: str, path: str, data: list) -> HttpResponse:
        return json_response(200, {"kind": kind, "metadata": {"self": self._url(request, path), "next": None}, "data": data})

    def _related(self, request: HttpRequest, path: str) -> dict:
        return {"related": self._url(request, path)}

    # -- clusters and brokers ------------------------------------------------------------------

    async def _cluster_data(self, request: HttpRequest) -> dict:
        cluster = self._metadata([])
        controller = cluster.controller_id if cluster.controller_id >= 0 else None
        return self._resource(
            request, "KafkaCluster", "", "", cluster_id=self.cluster_id,
            controller=self._related(request, f"/brokers/{controller}") if controller is not None else None,
            acls=self._related(request, "/acls"), brokers=self._related(request, "/brokers"),
            broker_configs=self._related(request, "/broker-configs"),
            consumer_groups=self._related(request, "/consumer-groups"), topics=self._related(request, "/topics"),
            partition_reassignments=self._related(request, "/topics/-/partitions/-/reassignment"),
        )

    async def list_clusters(self, request, auth):
        data = await self._cluster_data(request)
        host = request.headers.get("host") or "localhost"
        return json_response(200, {"kind": "KafkaClusterList", "metadata": {"self": f"http://{host}{BASE}/clusters",
                                                                           "next": None}, "data": [data]})

    async def get_cluster(self, request, auth):
        return json_response(200, await self._cluster_data(request))

    def _broker_data(self, request, broker) -> dict:
        return self._resource(
            request, "KafkaBroker", f"/brokers/{broker.node_id}", f"/broker={broker.node_id}",
            cluster_id=self.cluster_id, broker_id=broker.node_id, host=broker.host, port=broker.port, rack=broker.rack,
            configs=self._related(request, f"/brokers/{broker.node_id}/configs"),
            partition_replicas=self._related(request, f"/brokers/{broker.node_id}/partition-replicas"),
        )

    async def list_brokers(self, request, auth):
        cluster = self._metadata([])
        data = [self._broker_data(request, cluster.brokers[node_id]) for node_id in sorted(cluster.brokers)]
        return self._list(request, "KafkaBrokerList", "/brokers", data)

    async def _broker(self, broker_id: str):
        node_id = _int(broker_id, "broker_id", 0, 2**31 - 1)
        cluster = self._metadata([])
        broker = cluster.brokers.get(node_id)
        if broker is None:
            raise HttpError(404, f"no broker {node_id} in the cluster (brokers: {sorted(cluster.brokers)})")
        return broker

    async def get_broker(self, request, auth, broker_id):
        return json_response(200, self._broker_data(request, await self._broker(broker_id)))

    # -- configs (brokers and topics alike) ----------------------------------------------------

    def _config_data(self, request, resource_type: int, owner: str, entry) -> dict:
        if resource_type == RESOURCE_BROKER:
            kind, path, crn, extra = "KafkaBrokerConfig", f"/brokers/{owner}/configs/{entry.name}", \
                f"/broker={owner}/config={entry.name}", {"broker_id": int(owner)}
        else:
            kind, path, crn, extra = "KafkaTopicConfig", f"/topics/{owner}/configs/{entry.name}", \
                f"/topic={owner}/config={entry.name}", {"topic_name": owner}
        return self._resource(
            request, kind, path, crn, cluster_id=self.cluster_id, **extra, name=entry.name,
            value=None if entry.is_sensitive else entry.value, is_default=entry.is_default,
            is_read_only=entry.read_only, is_sensitive=entry.is_sensitive, source=entry.source,
            synonyms=[{"name": n, "value": v, "source": s} for n, v, s in entry.synonyms],
        )

    async def _configs(self, resource_type: int, owner: str, keys=None):
        return await Admin(await self.client()).describe_configs(resource_type, owner, keys)

    async def _alter(self, resource_type: int, owner: str, request: HttpRequest, set_configs, delete_configs):
        validate_only = _flag(request.query.get("validate_only", "false"), "validate_only")
        await Admin(await self.client()).incremental_alter_configs(
            resource_type, owner, set_configs=set_configs, delete_configs=delete_configs, validate_only=validate_only)
        return HttpResponse(204)

    async def list_broker_configs(self, request, auth, broker_id):
        auth.require(Operation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, "kafka-cluster")
        broker = await self._broker(broker_id)
        entries = await self._configs(RESOURCE_BROKER, str(broker.node_id))
        data = [self._config_data(request, RESOURCE_BROKER, str(broker.node_id), e) for e in entries]
        return self._list(request, "KafkaBrokerConfigList", f"/brokers/{broker.node_id}/configs", data)

    async def get_broker_config(self, request, auth, broker_id, name):
        auth.require(Operation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, "kafka-cluster")
        broker = await self._broker(broker_id)
        return self._one_config(request, RESOURCE_BROKER, str(broker.node_id), name,
                                await self._configs(RESOURCE_BROKER, str(broker.node_id)))

    async def set_broker_config(self, request, auth, broker_id, name):
        auth.require(Operation.ALTER_CONFIGS, ResourceType.CLUSTER, "kafka-cluster")
        broker = await self._broker(broker_id)
        return await self._alter(RESOURCE_BROKER, str(broker.node_id), request, {name: _config_value(request)}, ())

    async def reset_broker_config(self, request, auth, broker_id, name):
        auth.require(Operation.ALTER_CONFIGS, ResourceType.CLUSTER, "kafka-cluster")
        broker = await self._broker(broker_id)
        return await self._alter(RESOURCE_BROKER, str(broker.node_id), request, {}, [name])

    async def alter_broker_configs(self, request, auth, broker_id):
        auth.require(Operation.ALTER_CONFIGS, ResourceType.CLUSTER, "kafka-cluster")
        broker = await self._broker(broker_id)
        set_configs, delete_configs = _alterations(request)
        return await self._alter(RESOURCE_BROKER, str(broker.node_id), request, set_configs, delete_configs)

    def _one_config(self, request, resource_type, owner, name, entries):
        for entry in entries:
            if entry.name == name:
                return json_response(200, self._config_data(request, resource_type, owner, entry))
        raise HttpError(404, f"no config {name!r} here")

    async def list_topic_configs(self, request, auth, topic_name):
        auth.require(Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, topic_name)
        entries = await self._configs(RESOURCE_TOPIC, topic_name)
        data = [self._config_data(request, RESOURCE_TOPIC, topic_name, e) for e in entries]
        return self._list(request, "KafkaTopicConfigList", f"/topics/{topic_name}/configs", data)

    async def get_topic_config(self, request, auth, topic_name, name):
        auth.require(Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, topic_name)
        return self._one_config(request, RESOURCE_TOPIC, topic_name, name, await self._configs(RESOURCE_TOPIC, topic_name))

    async def set_topic_config(self, request, auth, topic_name, name):
        auth.require(Operation.ALTER_CONFIGS, ResourceType.TOPIC, topic_name)
        return await self._alter(RESOURCE_TOPIC, topic_name, request, {name: _config_value(request)}, ())

    async def reset_topic_config(self, request, auth, topic_name, name):
        auth.require(Operation.ALTER_CONFIGS, ResourceType.TOPIC, topic_name)
        return await self._alter(RESOURCE_TOPIC, topic_name, request, {}, [name])

    async def alter_topic_configs(self, request, auth, topic_name):
        auth.require(Operation.ALTER_CONFIGS, ResourceType.TOPIC, topic_name)
        set_configs, delete_configs = _alterations(request)
        return await self._alter(RESOURCE_TOPIC, topic_name, request, set_configs, delete_configs)

    # -- topics and partitions -----------------------------------------------------------------

    def _topic_data(self, request, topic) -> dict:
        name = topic.name
        return self._resource(
            request, "KafkaTopic", f"/topics/{name}", f"/topic={name}", cluster_id=self.cluster_id, topic_name=name,
            is_internal=topic.is_internal, replication_factor=topic.replication_factor,
            partitions_count=len(topic.partitions),
            partitions=self._related(request, f"/topics/{name}/partitions"),
            configs=self._related(request, f"/topics/{name}/configs"),
            partition_reassignments=self._related(request, f"/topics/{name}/partitions/-/reassignment"),
            authorized_operations=[],
            under_replicated_partitions=sum(1 for p in topic.partitions if p.under_replicated),
            offline_partitions=sum(1 for p in topic.partitions if p.leader_id < 0),
        )

    async def _topic(self, auth: HttpAuthorizer, name: str):
        """The topic's metadata; 404 for a topic that does not exist or that the caller may not
        describe (as Kafka answers UNKNOWN_TOPIC_OR_PARTITION rather than confirm it exists)."""
        if not auth.allows(Operation.DESCRIBE, ResourceType.TOPIC, name):
            raise HttpError(403, f"{auth.principal} is not authorized to DESCRIBE topic {name!r}")
        cluster = self._metadata([name])
        topic = cluster.topics.get(name)
        if topic is None or topic.error == ErrorCode.unknown_topic_or_partition:
            raise HttpError(404, f"UNKNOWN_TOPIC_OR_PARTITION: this server does not host topic {name!r}")
        if topic.error != ErrorCode.none:
            raise kafka_http_error(KafkaError(topic.error, f"topic {name!r}: {topic.error.name.upper()}"))
        return topic

    async def list_topics(self, request, auth):
        def respond() -> HttpResponse:  # in a worker thread, as for partitions: the image is immutable
            cluster = self._metadata(None)
            data = [self._topic_data(request, topic) for name, topic in sorted(cluster.topics.items())
                    if auth.allows(Operation.DESCRIBE, ResourceType.TOPIC, name)]
            return self._list(request, "KafkaTopicList", "/topics", data)

        return await asyncio.to_thread(respond)

    async def get_topic(self, request, auth, topic_name):
        return json_response(200, self._topic_data(request, await self._topic(auth, topic_name)))

    async def create_topic(self, request, auth):
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "expected a JSON object such as {\"topic_name\": \"events\", \"partitions_count\": 3}")
        name = body.get("topic_name")
        if not isinstance(name, str) or not name:
            raise HttpError(400, "topic_name is required (a string)")
        if not (auth.allows(Operation.CREATE, ResourceType.CLUSTER, "kafka-cluster")
                or auth.allows(Operation.CREATE, ResourceType.TOPIC, name)):
            raise HttpError(403, f"{auth.principal} is not authorized to CREATE topic {name!r}")
        partitions = _optional_int(body, "partitions_count", -1, 1, MAX_PARTITIONS)
        replication = _optional_int(body, "replication_factor", -1, 1, 32767)
        configs = body.get("configs", [])
        if not isinstance(configs, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) and "value" in c
                                                     and isinstance(c["value"], (str, type(None))) for c in configs):
            raise HttpError(400, "configs must be a list of {\"name\": ..., \"value\": ...} with string values")
        validate_only = body.get("validate_only", False) is True
        topic = NewTopic(name, partitions, replication, {c["name"]: c["value"] for c in configs})
        errors = await Admin(await self.client()).create_topics([topic], validate_only=validate_only)
        error = errors.get(name)
        if error is not None:
            raise kafka_http_error(error)
        if validate_only:
            return json_response(200, self._resource(
                request, "KafkaTopic", f"/topics/{name}", f"/topic={name}", cluster_id=self.cluster_id, topic_name=name,
                is_internal=False, replication_factor=replication, partitions_count=partitions))
        topic_metadata = await self._wait_for_topic(name)
        response = json_response(201, self._topic_data(request, topic_metadata))
        response.headers.append(("Location", self._url(request, f"/topics/{name}")))
        return response

    async def _wait_for_topic(self, name: str):
        """The new topic's metadata once the broker answering knows it (a moment after creation)."""
        for _ in range(100):
            topic = self._metadata([name]).topics.get(name)
            if topic is not None and topic.partitions and all(p.leader_id >= 0 for p in topic.partitions):
                return topic
            await asyncio.sleep(0.05)
        raise HttpError(504, f"topic {name!r} was created but its metadata did not arrive in time")

    async def update_topic(self, request, auth, topic_name):
        auth.require(Operation.ALTER, ResourceType.TOPIC, topic_name)
        body = request.json()
        if not isinstance(body, dict) or "partitions_count" not in body:
            raise HttpError(400, "expected {\"partitions_count\": N}: the only change a topic takes here")
        count = _optional_int(body, "partitions_count", None, 1, MAX_PARTITIONS)
        topic = await self._topic(auth, topic_name)
        if count != len(topic.partitions):
            errors = await Admin(await self.client()).create_partitions({topic_name: count})
            if errors.get(topic_name) is not None:
                raise kafka_http_error(errors[topic_name])
            for _ in range(50):
                topic = await self._topic(auth, topic_name)
                if len(topic.partitions) == count:
                    break
                await asyncio.sleep(0.1)
        return json_response(200, self._topic_data(request, topic))

    async def delete_topic(self, request, auth, topic_name):
        auth.require(Operation.DELETE, ResourceType.TOPIC, topic_name)
        errors = await Admin(await self.client()).delete_topics([topic_name])
        if errors.get(topic_name) is not None:
            raise kafka_http_error(errors[topic_name])
        return HttpResponse(204)

    async def _offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, tuple[int | None, int | None]]:
        """(earliest, latest) per partition; (None, None) where no leader answers. Partitions led
        here are read from the replicas themselves; the others are asked of their leaders."""
        result: dict[TopicPartition, tuple[int | None, int | None]] = {}
        remote = []
        for tp in tps:
            local = self._local_offsets(tp)
            if local is None:
                result[tp] = (None, None)
                remote.append(tp)
            else:
                result[tp] = local
        if not remote:
            return result
        tps = remote
        client = await self.client()
        try:
            earliest, latest = await asyncio.gather(list_offsets(client, {tp: EARLIEST for tp in tps}),
                                                    list_offsets(client, {tp: LATEST for tp in tps}))
        except KafkaError:
            return await self._offsets_one_by_one(tps) if len(tps) > 1 else result
        for tp in tps:
            result[tp] = (earliest[tp][0], latest[tp][0])
        return result

    def _metadata(self, topics: list[str] | None) -> ClusterMetadata:
        """What a Metadata request to this broker would answer, read from its own metadata image:
        no request, nothing to encode or decode (a topic of 10,000 partitions costs milliseconds)."""
        image = self._image_of()
        live = image.live_broker_ids()
        brokers = {}
        for node_id in live:
            registration = image.brokers[node_id]
            endpoint = registration.endpoints[0]
            brokers[node_id] = BrokerMetadata(node_id, endpoint.host, endpoint.port, registration.rack)
        names = image.topics if topics is None else [name for name in topics if name in image.topics]
        described = {}
        for name in names:
            topic = image.topics[name]
            partitions = tuple(
                PartitionMetadata(index, p.leader, p.leader_epoch, tuple(p.replicas), tuple(p.isr),
                                  error=ErrorCode.leader_not_available if p.leader < 0 else ErrorCode.none)
                for index, p in enumerate(topic.partitions))
            described[name] = TopicMetadata(name, topic.topic_id, topic.is_internal, partitions)
        return ClusterMetadata(brokers, described, image.cluster_id, image.controller_id)

    async def _offsets_one_by_one(self, tps):
        result = {}
        for tp in tps:
            result.update(await self._offsets([tp]))
        return result

    def _partition_data(self, request, topic_name: str, partition, offsets) -> dict:
        path = f"/topics/{topic_name}/partitions/{partition.partition}"
        earliest, latest = offsets
        return self._resource(
            request, "KafkaPartition", path, f"/topic={topic_name}/partition={partition.partition}",
            cluster_id=self.cluster_id, topic_name=topic_name, partition_id=partition.partition,
            leader=self._related(request, f"{path}/replicas/{partition.leader_id}") if partition.leader_id >= 0 else None,
            replicas=self._related(request, f"{path}/replicas"),
            reassignment=self._related(request, f"{path}/reassignment"),
            leader_id=partition.leader_id if partition.leader_id >= 0 else None,
            replica_ids=list(partition.replica_nodes), isr_ids=list(partition.isr_nodes),
            earliest_offset=earliest, latest_offset=latest,
        )

    async def list_partitions(self, request, auth, topic_name):
        """Every partition, or a page of them: `start` (the first partition id) and `limit`, with
        `metadata.next` naming the next page (a console pages a topic of 10,000 partitions)."""
        start = _int(request.query.get("start", "0"), "start", 0, 2**31 - 1)
        limit = _int(request.query.get("limit", str(MAX_PAGE_PARTITIONS)), "limit", 1, MAX_PAGE_PARTITIONS)
        topic = await self._topic(auth, topic_name)
        page = [p for p in topic.partitions if p.partition >= start][:limit]
        offsets = await self._offsets([TopicPartition(topic_name, p.partition) for p in page])

        def respond() -> HttpResponse:  # in a worker thread: thousands of partitions are seconds of Python
            data = [self._partition_data(request, topic_name, p, offsets[TopicPartition(topic_name, p.partition)])
                    for p in page]
            path = f"/topics/{topic_name}/partitions"
            response = {"kind": "KafkaPartitionList", "metadata": {"self": self._url(request, path), "next": None},
                        "partitions_count": len(topic.partitions), "data": data}
            if page and page[-1].partition < topic.partitions[-1].partition:
                response["metadata"]["next"] = self._url(request, path) + f"?start={page[-1].partition + 1}&limit={limit}"
            return json_response(200, response)

        return await asyncio.to_thread(respond)

    async def _partition(self, auth, topic_name, partition_id):
        topic = await self._topic(auth, topic_name)
        index = _int(partition_id, "partition_id", 0, 2**31 - 1)
        for partition in topic.partitions:
            if partition.partition == index:
                return partition
        raise HttpError(404, f"UNKNOWN_TOPIC_OR_PARTITION: topic {topic_name!r} has no partition {index} "
                             f"(partitions 0..{len(topic.partitions) - 1})")

    async def get_partition(self, request, auth, topic_name, partition_id):
        partition = await self._partition(auth, topic_name, partition_id)
        tp = TopicPartition(topic_name, partition.partition)
        offsets = await self._offsets([tp])
        return json_response(200, self._partition_data(request, topic_name, partition, offsets[tp]))

    async def list_replicas(self, request, auth, topic_name, partition_id):
        partition = await self._partition(auth, topic_name, partition_id)
        path = f"/topics/{topic_name}/partitions/{partition.partition}/replicas"
        data = [self._resource(
            request, "KafkaReplica", f"{path}/{broker_id}",
            f"/topic={topic_name}/partition={partition.partition}/replica={broker_id}",
            cluster_id=self.cluster_id, topic_name=topic_name, partition_id=partition.partition, broker_id=broker_id,
            is_leader=broker_id == partition.leader_id, is_in_sync=broker_id in partition.isr_nodes,
            broker=self._related(request, f"/brokers/{broker_id}"),
        ) for broker_id in partition.replica_nodes]
        return self._list(request, "KafkaReplicaList", path, data)

    # -- records -------------------------------------------------------------------------------

    async def produce_record(self, request, auth, topic_name):
        auth.require(Operation.WRITE, ResourceType.TOPIC, topic_name)
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "expected a JSON object such as {\"value\": {\"type\": \"JSON\", \"data\": {...}}}")
        partition = body.get("partition_id")
        if partition is not None and (not isinstance(partition, int) or isinstance(partition, bool) or partition < 0):
            raise HttpError(400, f"partition_id must be a partition number, not {partition!r}")
        key = _record_data(body.get("key"), "key")
        value = _record_data(body.get("value"), "value")
        headers = _record_headers(body.get("headers", []))
        timestamp = _timestamp(body.get("timestamp"))
        await self._topic(auth, topic_name)
        if timestamp is None:
            timestamp = int(time.time() * 1000)
        producer = Producer(await self.client(), acks=-1)
        await producer.send(topic_name, value, key=key, headers=headers, partition=partition, timestamp_ms=timestamp)
        await producer.flush()
        result = producer.results[-1]
        return json_response(200, {
            "error_code": 200, "cluster_id": self.cluster_id, "topic_name": topic_name,
            "partition_id": result.partition.partition, "offset": result.base_offset,
            "timestamp": _iso(timestamp),
            "key": None if key is None else {"type": body["key"].get("type", "BINARY"), "size": len(key)},
            "value": None if value is None else {"type": body["value"].get("type", "BINARY"), "size": len(value)},
        })

    async def browse_records(self, request, auth, topic_name, partition_id):
        auth.require(Operation.READ, ResourceType.TOPIC, topic_name)
        partition = await self._partition(auth, topic_name, partition_id)
        tp = TopicPartition(topic_name, partition.partition)
        query = request.query
        limit = _int(query.get("limit", str(DEFAULT_RECORDS)), "limit", 1, MAX_RECORDS)
        shown = query.get("format", "auto").lower()
        if shown not in ("auto", "text", "json", "hex", "base64"):
            raise HttpError(400, f"format must be auto, text, json, hex or base64, not {shown!r}")
        at = _int(query["timestamp"], "timestamp", 0, MAX_OFFSET) if "timestamp" in query else None
        offset = _int(query["offset"], "offset", 0, MAX_OFFSET) if "offset" in query else None
        client = await self.client()
        (earliest, latest), = (await self._offsets([tp])).values()
        if earliest is None:
            raise HttpError(503, f"partition {tp} has no leader to read from")
        if at is not None:
            found = (await list_offsets(client, {tp: at}))[tp][0]
            position = latest if found < 0 else found
        elif offset is not None:
            position = max(offset, earliest)
        else:
            position = max(earliest, latest - limit)
        records, read_to = [], position
        size = 0
        while len(records) < limit and read_to < latest and size < MAX_PAGE_BYTES:
            fetched = (await fetch(client, {tp: read_to}, max_wait_ms=0, max_bytes=MAX_PAGE_BYTES,
                                   partition_max_bytes=MAX_PAGE_BYTES))[tp]
            if fetched.error is not None:
                raise fetched.error
            if not fetched.records:
                if fetched.next_offset is None or fetched.next_offset <= read_to:
                    break
                read_to = fetched.next_offset  # a batch of control records only
                continue
            for record in fetched.records:
                if len(records) >= limit or size >= MAX_PAGE_BYTES:
                    break
                records.append(_shown_record(tp.partition, record, shown))
                size += len(record.key or b"") + len(record.value or b"")
                read_to = record.offset + 1
        page = {
            "kind": "KafkaRecordList",
            "metadata": {"self": self._url(request, f"/topics/{topic_name}/partitions/{tp.partition}/records"),
                         "next": (self._url(request, f"/topics/{topic_name}/partitions/{tp.partition}/records")
                                  + f"?offset={read_to}&limit={limit}&format={shown}") if read_to < latest else None},
            "topic_name": topic_name, "partition_id": tp.partition, "earliest_offset": earliest,
            "latest_offset": latest, "next_offset": read_to, "data": records,
        }
        return json_response(200, page)

    # -- consumer groups -----------------------------------------------------------------------

    async def list_groups(self, request, auth):
        listings = await Admin(await self.client()).list_groups()
        data = [self._group_data(request, g.group_id, g.state or "UNKNOWN", g.protocol_type, None, g.group_type)
                for g in listings if auth.allows(Operation.DESCRIBE, ResourceType.GROUP, g.group_id)]
        return self._list(request, "KafkaConsumerGroupList", "/consumer-groups", data)

    def _group_data(self, request, group_id, state, protocol_type, description, group_type=None) -> dict:
        path = f"/consumer-groups/{group_id}"
        return self._resource(
            request, "KafkaConsumerGroup", path, f"/consumer-group={group_id}", cluster_id=self.cluster_id,
            consumer_group_id=group_id, is_simple=protocol_type == "" and not (description and description.members),
            partition_assignor=description.protocol if description else None, state=_state_name(state),
            type=(group_type or "classic").upper() if group_type or protocol_type else None,
            coordinator=None, consumers=self._related(request, f"{path}/consumers"),
            lag_summary=self._related(request, f"{path}/lag-summary"),
        )

    async def _at_coordinator(self, group_id: str, operation):
        """`operation()` against the group's coordinator, looked up again while it moves (a
        failover, or __consumer_offsets being created) for up to the client's request timeout."""
        client = await self.client()
        deadline = asyncio.get_running_loop().time() + client.request_timeout_s
        while True:
            try:
                return await operation()
            except KafkaError as error:
                if error.code not in _COORDINATOR_MOVED or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.2)
            await client.coordinator(group_id, refresh=True)

    async def _describe_group(self, auth, group_id):
        auth.require(Operation.DESCRIBE, ResourceType.GROUP, group_id)

        async def describe():
            description = await Admin(await self.client()).describe_group(group_id)
            if description.error is not None:
                raise description.error
            return description

        description = await self._at_coordinator(group_id, describe)
        if description.state == "Dead":
            raise HttpError(404, f"GROUP_ID_NOT_FOUND: no consumer group {group_id!r}")
        return description

    async def get_group(self, request, auth, consumer_group_id):
        description = await self._describe_group(auth, consumer_group_id)
        return json_response(200, self._group_data(request, consumer_group_id, description.state,
                                                   description.protocol_type, description))

    async def delete_group(self, request, auth, consumer_group_id):
        auth.require(Operation.DELETE, ResourceType.GROUP, consumer_group_id)
        async def delete():
            error = (await Admin(await self.client()).delete_groups([consumer_group_id])).get(consumer_group_id)
            if error is not None:
                raise error

        await self._at_coordinator(consumer_group_id, delete)
        return HttpResponse(204)

    async def list_consumers(self, request, auth, consumer_group_id):
        description = await self._describe_group(auth, consumer_group_id)
        path = f"/consumer-groups/{consumer_group_id}/consumers"
        data = [self._resource(
            request, "KafkaConsumer", f"{path}/{m.member_id}",
            f"/consumer-group={consumer_group_id}/consumer={m.member_id}", cluster_id=self.cluster_id,
            consumer_group_id=consumer_group_id, consumer_id=m.member_id, instance_id=m.group_instance_id,
            client_id=m.client_id, client_host=m.client_host,
            assignments=[{"topic_name": tp.topic, "partition_id": tp.partition} for tp in m.assignment],
        ) for m in description.members]
        return self._list(request, "KafkaConsumerList", path, data)

    async def _lags(self, request, auth, group_id) -> list[dict]:
        description = await self._describe_group(auth, group_id)
        committed = await self._at_coordinator(group_id, lambda: Admin(self._client).committed_offsets(group_id))
        owners = {tp: m for m in description.members for tp in m.assignment}
        tps = sorted({tp for tp, offset in committed.items() if offset >= 0} | set(owners),
                     key=lambda tp: (tp.topic, tp.partition))
        tps = [tp for tp in tps if auth.allows(Operation.DESCRIBE, ResourceType.TOPIC, tp.topic)]
        ends = await self._offsets(tps)
        lags = []
        for tp in tps:
            current = committed.get(tp, -1)
            end = ends[tp][1]
            member = owners.get(tp)
            lags.append(self._resource(
                request, "KafkaConsumerLag", f"/consumer-groups/{group_id}/lags/{tp.topic}/partitions/{tp.partition}",
                f"/consumer-group={group_id}/lag={tp.topic}/partition={tp.partition}", cluster_id=self.cluster_id,
                consumer_group_id=group_id, topic_name=tp.topic, partition_id=tp.partition,
                current_offset=current if current >= 0 else None, log_end_offset=end,
                lag=(end - current) if end is not None and current >= 0 else None,
                consumer_id=member.member_id if member else "", instance_id=member.group_instance_id if member else None,
                client_id=member.client_id if member else "",
            ))
        return lags

    async def list_lags(self, request, auth, consumer_group_id):
        lags = await self._lags(request, auth, consumer_group_id)
        return self._list(request, "KafkaConsumerLagList", f"/consumer-groups/{consumer_group_id}/lags", lags)

    async def lag_summary(self, request, auth, consumer_group_id):
        lags = await self._lags(request, auth, consumer_group_id)
        known = [lag for lag in lags if lag["lag"] is not None]
        worst = max(known, key=lambda lag: lag["lag"], default=None)
        path = f"/consumer-groups/{consumer_group_id}/lag-summary"
        return json_response(200, self._resource(
            request, "KafkaConsumerGroupLagSummary", path, f"/consumer-group={consumer_group_id}/lag-summary",
            cluster_id=self.cluster_id, consumer_group_id=consumer_group_id,
            max_lag_consumer_id=worst["consumer_id"] if worst else "",
            max_lag_instance_id=worst["instance_id"] if worst else None,
            max_lag_client_id=worst["client_id"] if worst else "",
            max_lag_topic_name=worst["topic_name"] if worst else "",
            max_lag_partition_id=worst["partition_id"] if worst else 0,
            max_lag=worst["lag"] if worst else 0, total_lag=sum(lag["lag"] for lag in known),
            max_lag_consumer=None,
            max_lag_partition=self._related(request, f"/topics/{worst['topic_name']}/partitions/{worst['partition_id']}")
            if worst else None,
        ))


# -- request bodies ------------------------------------------------------------------------------

def _optional_int(body: dict, name: str, default, minimum: int, maximum: int):
    value = body.get(name, default)
    if value is None and default is None:
        raise HttpError(400, f"{name} is required")
    if value == default and not isinstance(value, bool):
        return value
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise HttpError(400, f"{name} must be an integer from {minimum} to {maximum}, not {value!r}")
    return value


def _flag(text: str, what: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise HttpError(400, f"{what} must be true or false, not {text!r}")
    return text.lower() == "true"


def _config_value(request: HttpRequest) -> str:
    body = request.json()
    if not isinstance(body, dict) or not isinstance(body.get("value"), str):
        raise HttpError(400, "expected {\"value\": \"...\"} with the new value as a string")
    return body["value"]


def _alterations(request: HttpRequest) -> tuple[dict[str, str], list[str]]:
    body = request.json()
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise HttpError(400, "expected {\"data\": [{\"name\": ..., \"value\": ...}, {\"name\": ..., \"operation\": \"DELETE\"}]}")
    set_configs, delete_configs = {}, []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise HttpError(400, "each entry of data needs a name")
        operation = str(item.get("operation") or "SET").upper()
        if operation == "DELETE":
            delete_configs.append(item["name"])
        elif operation == "SET" and isinstance(item.get("value"), str):
            set_configs[item["name"]] = item["value"]
        else:
            raise HttpError(400, f"config {item['name']!r}: operation SET needs a string value; operations are SET and DELETE")
    return set_configs, delete_configs


def _record_data(field, what: str) -> bytes | None:
    """A key or value of a produce request: {"type": "JSON"|"STRING"|"BINARY", "data": ...}."""
    if field is None:
        return None
    if not isinstance(field, dict) or "data" not in field:
        raise HttpError(400, f"{what} must be {{\"type\": \"JSON\"|\"STRING\"|\"BINARY\", \"data\": ...}}")
    kind = field.get("type", "BINARY")
    if kind not in ("JSON", "STRING", "BINARY"):
        raise HttpError(400, f"{what}: type must be JSON, STRING or BINARY, not {kind!r} (schema registry types are not served)")
    data = field["data"]
    if data is None:
        return None
    if kind == "JSON":
        return json.dumps(data, separators=(",", ":")).encode()
    if kind == "STRING":
        if not isinstance(data, str):
            raise HttpError(400, f"{what}: STRING data must be a string")
        return data.encode("utf-8")
    if kind == "BINARY":
        if not isinstance(data, str):
            raise HttpError(400, f"{what}: BINARY data must be a base64 string")
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, f"{what}: BINARY data is not valid base64") from None
    return None  # unreachable: the type was checked above


def _record_headers(headers) -> list[tuple[str, bytes | None]]:
    if not isinstance(headers, list):
        raise HttpError(400, "headers must be a list of {\"name\": ..., \"value\": base64}")
    result = []
    for header in headers:
        if not isinstance(header, dict) or not isinstance(header.get("name"), str):
            raise HttpError(400, "each header needs a name (a string)")
        value = header.get("value")
        if value is not None and not isinstance(value, str):
            raise HttpError(400, f"header {header['name']!r}: value must be base64 text or null")
        try:
            result.append((header["name"], None if value is None else base64.b64decode(value, validate=True)))
        except (binascii.Error, ValueError):
            raise HttpError(400, f"header {header['name']!r}: value is not valid base64") from None
    return result


def _timestamp(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.timezone.utc)
            return int(parsed.timestamp() * 1000)
    raise HttpError(400, f"timestamp must be an ISO 8601 time or milliseconds since the epoch, not {value!r}")


def _state_name(state: str) -> str:
    """Kafka's group state as Confluent's REST API spells it: PreparingRebalance -> PREPARING_REBALANCE."""
    text = str(state or "Unknown")
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(text)).upper()


def _shown(data: bytes | None, shown: str) -> dict | None:
    """Bytes as the reader asked: {"type": "JSON"|"STRING"|"HEX"|"BINARY", "data": ...}; `auto`
    picks JSON if they parse, else text if they are UTF-8, else hex."""
    if data is None:
        return None
    if shown == "hex":
        return {"type": "HEX", "data": data.hex()}
    if shown == "base64":
        return {"type": "BINARY", "data": base64.b64encode(data).decode()}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"type": "HEX", "data": data.hex()} if shown == "auto" else {"type": "BINARY", "data": base64.b64encode(data).decode()}
    if shown in ("auto", "json"):
        try:
            return {"type": "JSON", "data": json.loads(text)}
        except ValueError:
            pass
    return {"type": "STRING", "data": text}


def _shown_record(partition: int, record, shown: str) -> dict:
    return {
        "partition_id": partition, "offset": record.offset, "timestamp": _iso(record.timestamp),
        "timestamp_ms": record.timestamp, "key": _shown(record.key, shown), "value": _shown(record.value, shown),
        "headers": [{"name": name, "value": _shown(value, shown)} for name, value in record.headers],
    }
