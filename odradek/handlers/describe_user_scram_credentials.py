"""DescribeUserScramCredentials (key 50), v0: which SCRAM mechanisms each user has, with their
iteration counts (never salts or keys). All users when none is named; RESOURCE_NOT_FOUND for a
named user without credentials, DUPLICATE_RESOURCE for a user named twice, as in Kafka."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.security.scram import MECHANISM_TYPES, ScramCredential

API_KEY = 50
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx: RequestContext, request):
    configs = ctx.services.configs
    result_class = sibling(ctx.response_class, "DescribeUserScramCredentialsResult")
    info_class = sibling(ctx.response_class, "CredentialInfo")
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return build(ctx.response_class, throttle_time=timedelta(0), error_code=ErrorCode.cluster_authorization_failed,
                     error_message=None, results=())
    wanted = [user.name for user in request.users] if request.users else None
    named = wanted if wanted is not None else [user for user in configs.users() if _credentials(configs, user)]
    counts = Counter(named)
    results = []
    for user in dict.fromkeys(named):
        if counts[user] > 1:
            results.append(build(result_class, user=user, error_code=ErrorCode.duplicate_resource, credential_infos=(),
                                 error_message="Cannot describe SCRAM credentials for the same user twice in a single request"))
            continue
        credentials = _credentials(configs, user)
        if not credentials:
            results.append(build(result_class, user=user, error_code=ErrorCode.resource_not_found, credential_infos=(),
                                 error_message="Attempt to describe a user credential that does not exist"))
            continue
        infos = tuple(build(info_class, mechanism=MECHANISM_TYPES[mechanism], iterations=iterations)
                      for mechanism, iterations in credentials)
        results.append(build(result_class, user=user, error_code=ErrorCode.none, error_message=None, credential_infos=infos))
    return build(ctx.response_class, throttle_time=timedelta(0), error_code=ErrorCode.none, error_message=None,
                 results=tuple(results))


def _credentials(configs, user: str) -> list[tuple[str, int]]:
    found = []
    for mechanism, stored in sorted(configs.user_configs(user).items()):
        if mechanism in MECHANISM_TYPES:
            try:
                found.append((mechanism, ScramCredential.from_kafka(stored).iterations))
            except ValueError:
                continue
    return found
