"""DescribeClientQuotas (key 48), v0-v1: the quotas set for users, client ids and IP addresses.

The filter is Kafka's: each component names an entity type and matches one name (exact), the
default (default) or any name of that type (specified); with `strict` an entity matches only if it
has no other types. A bad filter gets Kafka's error: INVALID_REQUEST for an empty or repeated
type, a match string where none belongs (or none where one does), an IP combined with a user or
client id; UNSUPPORTED_VERSION for a type Kafka does not know. DESCRIBE_CONFIGS on the cluster is
required. Kafka's `kafka-configs --describe --entity-type users` asks this.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.security.quotas import CLIENT_ID, ENTITY_TYPES, IP, USER, QuotaError, matches

API_KEY = 48
MIN_VERSION = 0
MAX_VERSION = 1

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2


async def handle(ctx: RequestContext, request):
    def answer(error: ErrorCode, message: str | None = None, entries=None):
        return build(ctx.response_class, throttle_time=timedelta(0), error_code=error, error_message=message,
                     entries=entries)

    if not ctx.allowed(Operation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME):
        return answer(ErrorCode.cluster_authorization_failed, "Cluster authorization failed.")
    try:
        exact, specified = _filter(request.components)
    except QuotaError as refusal:
        return answer(refusal.code, str(refusal))
    entry_class = sibling(ctx.response_class, "EntryData")
    entity_class = sibling(ctx.response_class, "EntityData")
    value_class = sibling(ctx.response_class, "ValueData")
    entries = tuple(
        build(entry_class,
              entity=tuple(build(entity_class, entity_type=kind, entity_name=name) for kind, name in entity),
              values=tuple(build(value_class, key=key, value=value) for key, value in sorted(values.items())))
        for entity, values in sorted(ctx.services.configs.client_quotas().items(), key=lambda item: repr(item[0]))
        if matches(entity, exact, specified, request.strict)
    )
    return answer(ErrorCode.none, None, entries)


def _filter(components) -> tuple[dict[str, str | None], set[str]]:
    exact: dict[str, str | None] = {}
    specified: set[str] = set()
    for component in components:
        kind, match = component.entity_type, component.match
        if not kind:
            raise QuotaError("Invalid empty entity type.")
        if kind in exact or kind in specified:
            raise QuotaError(f"Entity type {kind} cannot appear more than once in the filter.")
        if kind not in ENTITY_TYPES:
            raise QuotaError(f"Unsupported entity type {kind}", ErrorCode.unsupported_version)
        if component.match_type == MATCH_EXACT:
            if match is None:
                raise QuotaError("Request specified MATCH_TYPE_EXACT, but set match string to null.")
            exact[kind] = match
        elif component.match_type == MATCH_DEFAULT:
            if match is not None:
                raise QuotaError("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
            exact[kind] = None
        elif component.match_type == MATCH_SPECIFIED:
            if match is not None:
                raise QuotaError("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
            specified.add(kind)
        else:
            raise QuotaError(f"Unknown match type {component.match_type}")
    named = set(exact) | specified
    if IP in named and named & {USER, CLIENT_ID}:
        raise QuotaError("Invalid entity filter component combination. IP filter component should not be used "
                         "with user or clientId filter component.")
    return exact, specified
