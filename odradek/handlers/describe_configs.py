"""DescribeConfigs (key 32), v1-v4: topic, broker and group configs with their sources, synonyms
(v1+), types and documentation (v3+). Broker loggers (type 8) and client metrics (16) are not
served: INVALID_REQUEST, as Kafka answers a resource type it does not know."""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation
from odradek.handlers.acl_requests import config_refusal
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 32
MIN_VERSION = 1
MAX_VERSION = 4

TOPIC = 2
BROKER = 4
GROUP = 32


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "DescribeConfigsResult")
    entry_class = sibling(response, "DescribeConfigsResourceResult")
    synonym_class = sibling(response, "DescribeConfigsSynonym")
    include_synonyms = getattr(request, "include_synonyms", False)
    include_documentation = getattr(request, "include_documentation", False)
    results = []
    for resource in request.resources:
        keys = set(resource.configuration_keys) if resource.configuration_keys is not None else None
        try:
            entries = _describe(ctx, resource.resource_type, resource.resource_name, keys)
        except KafkaError as error:
            results.append(
                build(
                    result_class, error_code=error.code, error_message=error.message or None,
                    resource_type=resource.resource_type, resource_name=resource.resource_name, configs=(),
                )
            )
            continue
        configs = tuple(
            build(
                entry_class,
                name=entry.name,
                value=entry.value,
                read_only=entry.read_only,
                config_source=entry.source,
                is_default=entry.source == 5,
                is_sensitive=entry.sensitive,
                synonyms=tuple(
                    build(synonym_class, name=name, value=value, source=source) for name, value, source in entry.synonyms
                )
                if include_synonyms
                else (),
                config_type=entry.type,
                documentation=entry.documentation if include_documentation else None,
            )
            for entry in entries
        )
        results.append(
            build(
                result_class, error_code=ErrorCode.none, error_message=None, resource_type=resource.resource_type,
                resource_name=resource.resource_name, configs=configs,
            )
        )
    return build(response, throttle_time=timedelta(0), results=tuple(results))


def _describe(ctx: RequestContext, resource_type: int, name: str, keys):
    refused = config_refusal(ctx, Operation.DESCRIBE_CONFIGS, resource_type, name)
    if refused is not None:
        raise KafkaError(refused, "not authorized to describe these configs")
    configs = ctx.services.configs
    if resource_type == TOPIC:
        record = ctx.image.topic(name)
        if record is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
        return configs.describe_topic(record.configs, keys)
    if resource_type == BROKER:
        return configs.describe_broker(name, keys)
    if resource_type == GROUP:
        return configs.describe_group(name, keys)
    raise KafkaError(ErrorCode.invalid_request, f"resource type {resource_type} is not supported (topics 2, brokers 4, groups 32)")
