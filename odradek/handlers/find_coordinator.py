"""FindCoordinator (key 10), v0-v6: which broker coordinates a group (or transaction).

A group's coordinator is the leader of its `__consumer_offsets` partition (Kafka's hash of the
group id modulo the partition count), found in the metadata image and answered with its endpoint
on this request's listener; no leader yet is COORDINATOR_NOT_AVAILABLE, which clients retry.
v4+ takes a batch of keys and answers each. Key types: 0 group; 1 transaction is refused
until transactions are built (see refuse_transactions); 2 share is INVALID_REQUEST, as a Kafka
without share groups answers. The first group lookup creates `__consumer_offsets`, as in Kafka. Advertising v0 matters
beyond groups too: librdkafka enables LZ4 only when FindCoordinator v0 is in ApiVersions.
"""

from __future__ import annotations

import logging
from datetime import timedelta

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
OFFSETS_TOPIC = "__consumer_offsets"


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    services = ctx.services
    key_type = getattr(request, "key_type", GROUP)

    if key_type == GROUP:
        try:
            await services.controller.run(services.groups.store.ensure_topic)
        except KafkaError as error:
            log.warning("Cannot create __consumer_offsets: %s", error)
            keys = request.coordinator_keys if ctx.api_version >= 4 else (request.key,)
            return _all_unavailable(response, keys, ctx.api_version)

    image = services.metadata.image  # the offsets topic may have just been created

    def answer(key: str) -> dict:
        if key_type not in (GROUP, TRANSACTION):
            return dict(
                key=key, node_id=-1, host="", port=-1,
                error_code=ErrorCode.invalid_request, error_message=f"unknown coordinator key type {key_type}",
            )
        if key_type == TRANSACTION:
            code, message = refuse_transactions(ctx, key)
            return dict(key=key, node_id=-1, host="", port=-1, error_code=code, error_message=message)
        if key_type == GROUP and not key:
            return dict(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.invalid_group_id, error_message="group id is empty")
        coordinator = services.node_id
        if key_type == GROUP:
            registration = image.partition(TopicPartition(OFFSETS_TOPIC, services.groups.store.partition_for(key)))
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


TRANSACTIONS_UNSUPPORTED = (
    "transactions are not supported by odradek yet; an idempotent producer "
    "(enable.idempotence=true, no transactional.id) still writes each record once per partition"
)


def refuse_transactions(ctx: RequestContext, transactional_id: str) -> tuple[ErrorCode, str]:
    """The answer to a transactional producer until transactions are built. Every client treats
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED as fatal at once (librdkafka and the Java client retry
    anything else for their whole timeout, 60-120 s, before failing); librdkafka shows the message."""
    log.warning("Refused transactional.id %r of client %r at %s: %s", transactional_id, ctx.client_id, ctx.peer,
                TRANSACTIONS_UNSUPPORTED)
    return ErrorCode.transactional_id_authorization_failed, TRANSACTIONS_UNSUPPORTED


def _all_unavailable(response, keys, version: int):
    unavailable = dict(
        node_id=-1, host="", port=-1, error_code=ErrorCode.coordinator_not_available,
        error_message="the offsets topic cannot be created",
    )
    if version >= 4:
        coordinator = sibling(response, "Coordinator")
        return build(response, throttle_time=timedelta(0), coordinators=tuple(build(coordinator, key=k, **unavailable) for k in keys))
    return build(response, throttle_time=timedelta(0), **unavailable)
