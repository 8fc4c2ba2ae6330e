"""DeleteTopics (key 20), v1-v6: by name, or (v6) by name or id.

The topic leaves the metadata at once and its partition directories are renamed to
`-delete` and removed in the background. A client's controller_mutation_rate counts the
partitions deleted (strict from v5: THROTTLING_QUOTA_EXCEEDED).
"""

from __future__ import annotations

import logging

from odradek.protocol.schemas import ZERO_UUID
from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 20
MIN_VERSION = 1
MAX_VERSION = 6

log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "DeletableTopicResult")
    controller = ctx.services.controller
    if ctx.api_version >= 6:
        wanted = [(state.name, state.topic_id) for state in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    quota = ctx.mutation_quota(strict_since=5)
    results = []
    for name, topic_id in wanted:
        try:
            if name is None:
                record = ctx.image.topic_by_id(topic_id) if topic_id and topic_id != ZERO_UUID else None
                if record is None:
                    raise KafkaError(ErrorCode.unknown_topic_id, f"no topic has id {topic_id}")
                name = record.name
            if not ctx.allowed(Operation.DELETE, ResourceType.TOPIC, name):
                if name is not None and not ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, name) and topic_id:
                    name = None  # Kafka does not say which name an id it will not describe has
                raise KafkaError(ErrorCode.topic_authorization_failed, "not authorized to delete this topic")
            existing = ctx.image.topics.get(name) if quota is not None else None
            if existing is not None:
                quota.record(existing.partition_count)
            record = await controller.run(controller.delete_topic, name)
            results.append(build(result_class, name=name, topic_id=record.topic_id, error_code=ErrorCode.none, error_message=None))
        except KafkaError as error:
            results.append(
                build(result_class, name=name, topic_id=topic_id or ZERO_UUID, error_code=error.code, error_message=error.message or None)
            )
        except Exception:
            log.exception("unexpected error deleting topic %r", name)
            results.append(
                build(result_class, name=name, topic_id=topic_id or ZERO_UUID, error_code=ErrorCode.unknown_server_error, error_message="see the broker log")
            )
    return build(response, throttle_time=ctx.mutation_throttle(quota), responses=tuple(results))
