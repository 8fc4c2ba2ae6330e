"""AlterConfigs (key 33), v0-v2, and the shared apply step of IncrementalAlterConfigs.

AlterConfigs replaces a resource's whole set of overrides (configs not named go back to their
defaults), as in Kafka. Topic changes apply at once to the topic's partitions; broker changes
(dynamic log configs only) are persisted and apply at once to every topic using the default.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation
from odradek.handlers.acl_requests import config_refusal
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 33
MIN_VERSION = 0
MAX_VERSION = 2

TOPIC = 2
BROKER = 4
GROUP = 32


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "AlterConfigsResourceResponse")
    results = []
    for resource in request.resources:
        values = {c.name: c.value for c in resource.configs if c.value is not None}
        error = await apply(ctx, resource.resource_type, resource.resource_name, lambda current: values, request.validate_only)
        results.append(_result(result_class, resource, error))
    return build(response, throttle_time=timedelta(0), responses=tuple(results))


async def apply(ctx: RequestContext, resource_type: int, name: str, change, validate_only: bool) -> KafkaError | None:
    """Compute new overrides with `change(current)`, validate, and (unless validate_only) apply them."""
    services = ctx.services
    try:
        refused = config_refusal(ctx, Operation.ALTER_CONFIGS, resource_type, name)
        if refused is not None:
            raise KafkaError(refused, "not authorized to alter these configs")
        if resource_type == TOPIC:
            record = ctx.image.topic(name)
            if record is None:
                raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
            overrides = change(dict(record.configs))
            services.configs.validate_topic_overrides(overrides)
            if not validate_only:
                await services.controller.run(services.controller.set_topic_configs, name, overrides)
        elif resource_type == BROKER:
            overrides = change(services.configs.broker_overrides(name))
            if await services.controller.run(services.configs.alter_broker, name, overrides, validate_only=validate_only):
                services.controller.reconfigure(services.configs.effective)
        elif resource_type == GROUP:
            overrides = change(services.configs.group_overrides(name))
            await services.controller.run(services.configs.alter_group, name, overrides, validate_only=validate_only)
        else:
            raise KafkaError(ErrorCode.invalid_request, f"resource type {resource_type} is not supported (topics 2, brokers 4, groups 32)")
    except KafkaError as error:
        return error
    return None


def _result(result_class, resource, error: KafkaError | None):
    return build(
        result_class,
        error_code=error.code if error else ErrorCode.none,
        error_message=(error.message or None) if error else None,
        resource_type=resource.resource_type,
        resource_name=resource.resource_name,
    )
