"""AlterClientQuotas (key 49), v0-v1: set or remove quotas of users, client ids and IP addresses.

What Kafka's `kafka-configs --alter --add-config 'producer_byte_rate=1048576' --entity-type users
--entity-name alice` sends. Entities and values are checked as Kafka checks them (INVALID_REQUEST
with Kafka's message: an unknown key, a key of the wrong kind of entity, a value that is not
above 0 or not whole for a byte rate, an IP combined with a user). One result per entry; an entity
named twice in one request is refused whole. ALTER_CONFIGS on the cluster is required. The
quotas are stored in the metadata store (ZooKeeper's /config/users, /config/clients, /config/ips)
and apply at once to the next request of every connection.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.security.quotas import QuotaError, check_value, describe_entity, entity_of

API_KEY = 49
MIN_VERSION = 0
MAX_VERSION = 1


async def handle(ctx: RequestContext, request):
    entity_class = sibling(ctx.response_class, "EntityData")
    entry_class = sibling(ctx.response_class, "EntryData")
    configs = ctx.services.configs
    allowed = ctx.allowed(Operation.ALTER_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME)
    named = Counter(_pairs(entry) for entry in request.entries)
    current = configs.client_quotas()
    outcomes = []  # (request entry, error, message, (entity, new values) or None)
    for entry in request.entries:
        try:
            if not allowed:
                raise QuotaError("Cluster authorization failed.", ErrorCode.cluster_authorization_failed)
            entity = entity_of(_pairs(entry))
            if named[_pairs(entry)] > 1:
                raise QuotaError(f"Ignoring duplicate entity {describe_entity(entity)}")
            outcomes.append((entry, ErrorCode.none, None, (entity, _altered(entity, current.get(entity, {}), entry.ops))))
        except QuotaError as refusal:
            outcomes.append((entry, refusal.code, str(refusal), None))
    if not request.validate_only:
        for _, _, _, change in outcomes:
            if change is not None:
                await ctx.services.controller.run(configs.set_client_quotas, *change)
        ctx.services.quotas.configure(configs.client_quotas())
    results = tuple(
        build(entry_class, error_code=error, error_message=message,
              entity=tuple(build(entity_class, entity_type=e.entity_type, entity_name=e.entity_name) for e in entry.entity))
        for entry, error, message, _ in outcomes
    )
    return build(ctx.response_class, throttle_time=timedelta(0), entries=results)


def _pairs(entry) -> tuple[tuple[str, str | None], ...]:
    """The entry's (type, name) components in one order, whatever order they came in; a default
    (None) name sorts before the named ones of its type (a type given twice is refused by entity_of)."""
    return tuple(sorted(((component.entity_type, component.entity_name) for component in entry.entity),
                        key=lambda pair: (pair[0], pair[1] is not None, pair[1] or "")))


def _altered(entity, current: dict[str, float], ops) -> dict[str, float]:
    """The entity's quotas after `ops`; QuotaError for a key named twice or a bad value."""
    keys = [op.key for op in ops]
    for key in keys:
        if keys.count(key) > 1:
            raise QuotaError(f"Duplicate quota key {key} not updating quota for this entity {describe_entity(entity)}")
    values = dict(current)
    for op in ops:
        if op.remove:
            values.pop(op.key, None)
        else:
            check_value(entity, op.key, float(op.value))
            values[op.key] = float(op.value)
    return values
