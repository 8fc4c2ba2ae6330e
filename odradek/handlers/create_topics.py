"""CreateTopics (key 19), v2-v7.

Each topic is validated (name, partition count, replication factor, manual assignment,
configs) and created, or only validated with `validate_only`. -1 partitions or replication
factor mean the broker defaults. Every topic gets its own error code and message.
From v5 the answer carries the effective configs; from v7 the topic id. A client's
controller_mutation_rate counts the partitions created (strict from v6: THROTTLING_QUOTA_EXCEEDED).
"""

from __future__ import annotations

import logging

from odradek.protocol.schemas import ZERO_UUID
from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 19
MIN_VERSION = 2
MAX_VERSION = 7

CONFIG_SOURCE_TOPIC = 1
CONFIG_SOURCE_DEFAULT = 5

log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "CreatableTopicResult")
    config_class = sibling(response, "CreatableTopicConfigs")
    controller = ctx.services.controller
    names = [topic.name for topic in request.topics]
    may_create_any = ctx.allowed(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
    validate_only = getattr(request, "validate_only", False)
    quota = None if validate_only else ctx.mutation_quota(strict_since=6)
    results = []
    for topic in request.topics:
        try:
            if names.count(topic.name) > 1:
                raise KafkaError(ErrorCode.invalid_request, f"topic '{topic.name}' appears more than once in the request")
            if not (may_create_any or ctx.allowed(Operation.CREATE, ResourceType.TOPIC, topic.name)):
                raise KafkaError(ErrorCode.topic_authorization_failed, "not authorized to create this topic")
            assignments = {a.partition_index: tuple(a.broker_ids) for a in topic.assignments}
            configs = {c.name: c.value for c in topic.configs}
            create = (controller.create_topic, topic.name, topic.num_partitions, topic.replication_factor, configs)
            if quota is not None:  # a topic that would be refused anyway is not counted
                planned = await controller.run(*create, assignments=assignments or None, validate_only=True)
                quota.record(planned.partitions)
            record = await controller.run(*create, assignments=assignments or None, validate_only=validate_only)
        except KafkaError as error:
            results.append(_error(result_class, topic.name, error))
            continue
        except Exception:
            log.exception("unexpected error creating topic %r", topic.name)
            results.append(_error(result_class, topic.name, KafkaError(ErrorCode.unknown_server_error, "see the broker log")))
            continue
        if not validate_only:
            # Kafka answers once the new partitions have leaders (ZooKeeper mode: the controller
            # elects them a moment later), within the request's timeout.
            await controller.wait_for_leaders(record.name, request.timeout.total_seconds())
        effective = controller.effective_topic_configs(record)
        results.append(
            build(
                result_class,
                name=record.name,
                topic_id=record.topic_id,
                error_code=ErrorCode.none,
                error_message=None,
                topic_config_error_code=ErrorCode.none,
                num_partitions=record.partitions,
                replication_factor=record.replication_factor,
                configs=None
                if config_class is None
                else tuple(
                    build(
                        config_class,
                        name=name,
                        value=value,
                        read_only=False,
                        config_source=CONFIG_SOURCE_TOPIC if name in record.configs else CONFIG_SOURCE_DEFAULT,
                        is_sensitive=False,
                    )
                    for name, value in sorted(effective.items())
                ),
            )
        )
    return build(response, throttle_time=ctx.mutation_throttle(quota), topics=tuple(results))


def _error(result_class, name: str, error: KafkaError):
    return build(
        result_class,
        name=name,
        topic_id=ZERO_UUID,
        error_code=error.code,
        error_message=error.message or None,
        topic_config_error_code=ErrorCode.none,
        num_partitions=-1,
        replication_factor=-1,
        configs=None,
    )
