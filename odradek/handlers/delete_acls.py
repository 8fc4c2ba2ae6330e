"""DeleteAcls (key 31), v1-v3: remove the bindings matching each filter (ALTER on the cluster),
answering per filter with the bindings it removed."""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.acl_requests import NOT_ENABLED, cluster_allowed, enabled, filter_of
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.security.acl import AclError, Operation

API_KEY = 31
MIN_VERSION = 1
MAX_VERSION = 3


async def handle(ctx: RequestContext, request):
    result_class = sibling(ctx.response_class, "DeleteAclsFilterResult")
    matching_class = sibling(ctx.response_class, "DeleteAclsMatchingAcl")

    def answer(results):
        return build(ctx.response_class, throttle_time=timedelta(0), filter_results=tuple(results))

    def failed(code: ErrorCode, message: str | None = None):
        return build(result_class, error_code=code, error_message=message, matching_acls=())

    if not enabled(ctx):
        return answer([failed(ErrorCode.security_disabled, NOT_ENABLED) for _ in request.filters])
    if not cluster_allowed(ctx, Operation.ALTER):
        return answer([failed(ErrorCode.cluster_authorization_failed) for _ in request.filters])
    filters, outcomes = [], []
    for each in request.filters:
        try:
            filters.append(filter_of(each))
            outcomes.append(None)
        except AclError as error:
            outcomes.append(failed(ErrorCode.invalid_request, str(error)))
    try:
        removed = iter(await ctx.services.controller.run(ctx.services.acls.delete, filters))
    except KafkaError as error:
        return answer([failed(error.code, error.message) for _ in request.filters])
    results = []
    for outcome in outcomes:
        if outcome is not None:
            results.append(outcome)
            continue
        matched = next(removed)
        results.append(build(result_class, error_code=ErrorCode.none, error_message=None, matching_acls=tuple(
            build(matching_class, error_code=ErrorCode.none, error_message=None, resource_type=b.resource_type,
                  resource_name=b.resource_name, pattern_type=b.pattern_type, principal=b.principal, host=b.host,
                  operation=b.operation, permission_type=b.permission)
            for b in matched)))
    return answer(results)
