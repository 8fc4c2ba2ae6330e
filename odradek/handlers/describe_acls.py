"""DescribeAcls (key 29), v1-v3: the bindings matching a filter, grouped by resource (DESCRIBE on
the cluster). SECURITY_DISABLED without an authorizer, INVALID_REQUEST for a bad filter."""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.acl_requests import NOT_ENABLED, cluster_allowed, enabled, filter_of
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.security.acl import AclError, Operation

API_KEY = 29
MIN_VERSION = 1
MAX_VERSION = 3


async def handle(ctx: RequestContext, request):
    def answer(error: ErrorCode, message: str | None = None, resources=()):
        return build(ctx.response_class, throttle_time=timedelta(0), error_code=error, error_message=message,
                     resources=tuple(resources))

    if not enabled(ctx):
        return answer(ErrorCode.security_disabled, NOT_ENABLED)
    if not cluster_allowed(ctx, Operation.DESCRIBE):
        return answer(ErrorCode.cluster_authorization_failed)
    try:
        acl_filter = filter_of(request)
    except AclError as error:
        return answer(ErrorCode.invalid_request, str(error))
    resource_class = sibling(ctx.response_class, "DescribeAclsResource")
    acl_class = sibling(ctx.response_class, "AclDescription")
    grouped: dict = {}
    for binding in ctx.services.acls.bindings:
        if acl_filter.matches(binding):
            key = (binding.resource_type, binding.resource_name, binding.pattern_type)
            grouped.setdefault(key, []).append(binding)
    resources = [
        build(resource_class, resource_type=kind, resource_name=name, pattern_type=pattern, acls=tuple(
            build(acl_class, principal=b.principal, host=b.host, operation=b.operation, permission_type=b.permission)
            for b in bindings))
        for (kind, name, pattern), bindings in sorted(grouped.items())
    ]
    return answer(ErrorCode.none, None, resources)
