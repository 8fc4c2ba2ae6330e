"""IncrementalAlterConfigs (key 44), v0-v1: SET, DELETE, APPEND and SUBTRACT on single configs."""

from __future__ import annotations

from datetime import timedelta

from odradek.config import broker_config_defs, group_config_defs, topic_config_defs
from odradek.handlers.alter_configs import BROKER, GROUP, _result, apply
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling

API_KEY = 44
MIN_VERSION = 0
MAX_VERSION = 1


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "AlterConfigsResourceResponse")
    results = []
    for resource in request.resources:
        operations = [(c.name, c.config_operation, c.value) for c in resource.configs]
        definitions = {BROKER: broker_config_defs, GROUP: group_config_defs}.get(resource.resource_type, topic_config_defs)()
        configs = ctx.services.configs

        def change(current, operations=operations, definitions=definitions):
            return configs.apply_operations(current, operations, definitions)

        error = await apply(ctx, resource.resource_type, resource.resource_name, change, request.validate_only)
        results.append(_result(result_class, resource, error))
    return build(response, throttle_time=timedelta(0), responses=tuple(results))
