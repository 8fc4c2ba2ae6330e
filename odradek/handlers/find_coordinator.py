"""FindCoordinator (key 10), v0-v6: which broker coordinates a group or a transactional id.

A group's coordinator is the leader of its `__consumer_offsets` partition, a transactional id's
the leader of its `__transaction_state` partition (Kafka's hash of the id modulo the partition
count), found in the metadata image and answered with its endpoint on this request's listener;
no leader yet is COORDINATOR_NOT_AVAILABLE, which clients retry. v4+ takes a batch of keys and
answers each. Key types: 0 group, 1 transaction; 2 share is INVALID_REQUEST, as a Kafka without
share groups answers. The first lookup of each kind creates its internal topic, as in Kafka.
Advertising v0 matters beyond groups too: librdkafka enables LZ4 only when FindCoordinator v0 is
in ApiVersions.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

log = logging.getLogger(__name__)

API_KEY = 10
MIN_VERSION = 0
MAX_VERSION = 6

GROUP = 0
TRANSACTION = 1


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    services = ctx.services
    key_type = getattr(request, "key_type", GROUP)

    store = {GROUP: services.groups.store, TRANSACTION: services.transactions.store}.get(key_type)
    if store is not None:
        try:
            await services.controller.run(store.ensure_topic)
        except KafkaError as error:
            log.warning("Cannot create %s: %s", store.topic, error)
            keys = request.coordinator_keys if ctx.api_version >= 4 else (request.key,)
            return _all_unavailable(response, keys, ctx.api_version, store.topic)

    image = services.metadata.image  # the internal topic may have just been created

    def answer(key: str) -> dict:
        if store is None:
            return dict(
                key=key, node_id=-1, host="", port=-1,
                error_code=ErrorCode.invalid_request, error_message=f"unknown coordinator key type {key_type}",
            )
        if not key:
            code = ErrorCode.invalid_group_id if key_type == GROUP else ErrorCode.invalid_request
            return dict(key=key, node_id=-1, host="", port=-1, error_code=code, error_message="the key is empty")
        if key_type == GROUP and not ctx.allowed(Operation.DESCRIBE, ResourceType.GROUP, key):
            return dict(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.group_authorization_failed,
                        error_message=None)
        if key_type == TRANSACTION and not ctx.allowed(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, key):
            return dict(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.transactional_id_authorization_failed,
                        error_message=None)
        registration = image.partition(TopicPartition(store.topic, store.partition_for(key)))
        coordinator = registration.leader if registration is not None else -1
        broker = image.brokers.get(coordinator)
        endpoint = ctx.endpoint_of(broker) if broker is not None else None
        if endpoint is None:
            return dict(
                key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.coordinator_not_available,
                error_message="the coordinator's partition has no leader reachable on this listener yet",
            )
        return dict(
            key=key, node_id=coordinator, host=endpoint.host, port=endpoint.port,
            error_code=ErrorCode.none, error_message=None,
        )

    if ctx.api_version >= 4:
        coordinator = sibling(response, "Coordinator")
        return build(
            response,
            throttle_time=timedelta(0),
            coordinators=tuple(build(coordinator, **answer(key)) for key in request.coordinator_keys),
        )
    return build(response, throttle_time=timedelta(0), **answer(request.key))


def _all_unavailable(response, keys, version: int, topic: str):
    unavailable = dict(
        node_id=-1, host="", port=-1, error_code=ErrorCode.coordinator_not_available,
        error_message=f"{topic} cannot be created",
    )
    if version >= 4:
        coordinator = sibling(response, "Coordinator")
        return build(response, throttle_time=timedelta(0), coordinators=tuple(build(coordinator, key=k, **unavailable) for k in keys))
    return build(response, throttle_time=timedelta(0), **unavailable)
