"""CreateAcls (key 30), v1-v3: add ACL bindings (ALTER on the cluster). One result per creation,
in order: INVALID_REQUEST for a binding Kafka refuses, SECURITY_DISABLED without an authorizer,
CLUSTER_AUTHORIZATION_FAILED for a caller without the right."""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.acl_requests import NOT_ENABLED, binding_of, cluster_allowed, enabled
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.security.acl import AclError, Operation, validate

API_KEY = 30
MIN_VERSION = 1
MAX_VERSION = 3


async def handle(ctx: RequestContext, request):
    result_class = sibling(ctx.response_class, "AclCreationResult")

    def answer(outcomes):
        results = tuple(build(result_class, error_code=code, error_message=message) for code, message in outcomes)
        return build(ctx.response_class, throttle_time=timedelta(0), results=results)

    if not enabled(ctx):
        return answer([(ErrorCode.security_disabled, NOT_ENABLED)] * len(request.creations))
    if not cluster_allowed(ctx, Operation.ALTER):
        return answer([(ErrorCode.cluster_authorization_failed, None)] * len(request.creations))
    outcomes, valid = [], []
    for creation in request.creations:
        binding = binding_of(creation)
        try:
            validate(binding)
        except AclError as error:
            outcomes.append((ErrorCode.invalid_request, str(error)))
            continue
        outcomes.append((ErrorCode.none, None))
        valid.append(binding)
    if valid:
        try:
            await ctx.services.controller.run(ctx.services.acls.create, valid)
        except KafkaError as error:
            outcomes = [(error.code, error.message) if code == ErrorCode.none else (code, message)
                        for code, message in outcomes]
    return answer(outcomes)
