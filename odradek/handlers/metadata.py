"""Metadata (key 3), v0-v12.

Behaviour: v0 with an empty list, or v1+ with topics=null, lists every topic; an empty list
(v1+) lists none. Unknown topics are created when `auto.create.topics.enable` and the request
allows it (always before v4); the answer then already carries the new topic (creation is
synchronous on a single node, so no LEADER_NOT_AVAILABLE round trip). Topics may be asked for
by id (v10+). Brokers, leaders, replicas and ISRs come from the metadata image; brokers are
listed with their endpoint on the listener the request came in on.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.protocol.schemas import AUTHORIZED_OPERATIONS_OMITTED, ZERO_UUID
from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.metadata_response import forget_encoded_entries

API_KEY = 3
MIN_VERSION = 0
MAX_VERSION = 12



async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    image = ctx.image
    allow_auto_create = getattr(request, "allow_auto_topic_creation", True)
    include_operations = getattr(request, "include_topic_authorized_operations", False)

    if request.topics is None or (ctx.api_version == 0 and not request.topics):
        topics = [_topic(response, image.topics[name], ctx, include_operations) for name in sorted(image.topics)
                  if ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, name)]  # others are left out, as in Kafka
    else:
        topics = [await _requested_topic(response, entry, allow_auto_create, ctx, include_operations)
                  for entry in request.topics]
        image = ctx.services.metadata.image  # auto-creation may have published a newer one

    broker_class = sibling(response, "MetadataResponseBroker")
    brokers = []
    for broker in image.brokers.values():
        endpoint = ctx.endpoint_of(broker)
        if endpoint is not None and not broker.fenced:
            brokers.append(build(broker_class, node_id=broker.node_id, host=endpoint.host, port=endpoint.port, rack=broker.rack))
    return build(
        response,
        throttle_time=timedelta(0),
        brokers=tuple(brokers),
        cluster_id=image.cluster_id,
        controller_id=image.controller_id,
        topics=tuple(topics),
        cluster_authorized_operations=ctx.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME)
        if getattr(request, "include_cluster_authorized_operations", False) else AUTHORIZED_OPERATIONS_OMITTED,
        error_code=ErrorCode.none,
    )


async def _requested_topic(response, entry, allow_auto_create: bool, ctx: RequestContext, include_operations: bool = False):
    name = entry.name
    topic_id = getattr(entry, "topic_id", None)
    image = ctx.image
    if name is None:
        topic = image.topic_by_id(topic_id) if topic_id else None
        if topic is None:
            return _topic_error(response, None, topic_id or ZERO_UUID, ErrorCode.unknown_topic_id)
        if not ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, topic.name):
            return _topic_error(response, None, topic_id, ErrorCode.topic_authorization_failed)
        return _topic(response, topic, ctx, include_operations)
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, name):
        return _topic_error(response, name, ZERO_UUID, ErrorCode.topic_authorization_failed)
    topic = image.topic(name)
    if topic is None:
        controller = ctx.services.controller
        try:
            controller.validate_topic_name(name)
            if not allow_auto_create:
                raise KafkaError(ErrorCode.unknown_topic_or_partition)
            if not (ctx.allowed(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
                    or ctx.allowed(Operation.CREATE, ResourceType.TOPIC, name)):
                raise KafkaError(ErrorCode.topic_authorization_failed)
            await controller.run(controller.auto_create_topic, name)
        except KafkaError as error:
            return _topic_error(response, name, ZERO_UUID, error.code)
        topic = ctx.services.metadata.image.topic(name)
        if topic is None:
            return _topic_error(response, name, ZERO_UUID, ErrorCode.leader_not_available)
    return _topic(response, topic, ctx, include_operations)


class _TopicEntries:
    """Built topic entries of the current image, per response version and listener: the image is
    immutable and replaced whole on a change, so while it stands a topic's entry is the same for
    every client (a Metadata of 10,000 partitions was mostly building them again)."""

    def __init__(self) -> None:
        self.image = None
        self.entries: dict[tuple, object] = {}

    def get(self, response, topic, ctx: RequestContext):
        if ctx.image is not self.image:
            self.image, self.entries = ctx.image, {}
            forget_encoded_entries()
        key = (response, ctx.listener_name, topic.name)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _build_topic(response, topic, ctx)
        return entry


_ENTRIES = _TopicEntries()


def _topic(response, topic, ctx: RequestContext, include_operations: bool = False):
    if include_operations or topic is not ctx.image.topics.get(topic.name):
        return _build_topic(response, topic, ctx, include_operations)
    return _ENTRIES.get(response, topic, ctx)


def _build_topic(response, topic, ctx: RequestContext, include_operations: bool = False):
    """A topic's partitions as the image has them; a leader not reachable on this listener (or
    not alive) is LEADER_NOT_AVAILABLE, as Kafka answers."""
    partition_class = sibling(response, "MetadataResponsePartition")
    brokers = ctx.image.brokers
    live = [node_id for node_id, broker in brokers.items() if not broker.fenced]
    partitions = []
    for index, registration in enumerate(topic.partitions):
        leader = registration.leader
        leader_broker = brokers.get(leader)
        error = ErrorCode.none
        if leader < 0 or leader_broker is None or ctx.endpoint_of(leader_broker) is None:
            error, leader = ErrorCode.leader_not_available, -1
        partitions.append(
            build(
                partition_class,
                error_code=error,
                partition_index=index,
                leader_id=leader,
                leader_epoch=registration.leader_epoch,
                replica_nodes=registration.replicas,
                isr_nodes=registration.isr,
                offline_replicas=registration.offline_replicas(live),
            )
        )
    return build(
        sibling(response, "MetadataResponseTopic"),
        error_code=ErrorCode.none,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.is_internal,
        partitions=tuple(partitions),
        topic_authorized_operations=ctx.authorized_operations(ResourceType.TOPIC, topic.name)
        if include_operations else AUTHORIZED_OPERATIONS_OMITTED,
    )


def _topic_error(response, name, topic_id, code: ErrorCode):
    return build(
        sibling(response, "MetadataResponseTopic"),
        error_code=code,
        name=name if name is not None else "",
        topic_id=topic_id,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )
