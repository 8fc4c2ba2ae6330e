"""CreatePartitions (key 37), v0-v3: grow a topic; manual assignments must name this broker.
A client's controller_mutation_rate counts the partitions added (strict from v3: THROTTLING_QUOTA_EXCEEDED)."""

from __future__ import annotations

import logging

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 37
MIN_VERSION = 0
MAX_VERSION = 3

log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "CreatePartitionsTopicResult")
    names = [topic.name for topic in request.topics]
    quota = None if request.validate_only else ctx.mutation_quota(strict_since=3)
    results = []
    for topic in request.topics:
        error: KafkaError | None = None
        try:
            if names.count(topic.name) > 1:
                raise KafkaError(ErrorCode.invalid_request, f"topic '{topic.name}' appears more than once in the request")
            if not ctx.allowed(Operation.ALTER, ResourceType.TOPIC, topic.name):
                raise KafkaError(ErrorCode.topic_authorization_failed, "not authorized to alter this topic")
            assignments = None if topic.assignments is None else [tuple(a.broker_ids) for a in topic.assignments]
            controller = ctx.services.controller
            if quota is not None:  # a request that would be refused anyway is not counted
                current = await controller.run(controller.create_partitions, topic.name, topic.count, assignments,
                                               validate_only=True)
                quota.record(topic.count - current.partitions)
            await controller.run(controller.create_partitions, topic.name, topic.count, assignments,
                                 validate_only=request.validate_only)
        except KafkaError as failure:
            error = failure
        except Exception:
            log.exception("unexpected error adding partitions to %r", topic.name)
            error = KafkaError(ErrorCode.unknown_server_error, "see the broker log")
        results.append(
            build(
                result_class,
                name=topic.name,
                error_code=error.code if error else ErrorCode.none,
                error_message=(error.message or None) if error else None,
            )
        )
    return build(response, throttle_time=ctx.mutation_throttle(quota), results=tuple(results))
