"""What CreateAcls, DescribeAcls and DeleteAcls share: turning their fields into bindings and
filters, and Kafka's answers when ACLs are off or the caller may not touch them."""

from __future__ import annotations

from odradek.handlers.context import RequestContext
from odradek.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclError,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)


def _enum(kind, value: int):
    try:
        return kind(int(value))
    except ValueError:
        return kind.UNKNOWN


def binding_of(creation) -> AclBinding:
    return AclBinding(_enum(ResourceType, creation.resource_type), creation.resource_name,
                      _enum(PatternType, creation.resource_pattern_type), creation.principal, creation.host,
                      _enum(Operation, creation.operation), _enum(Permission, creation.permission_type))


def filter_of(request) -> AclFilter:
    """A DescribeAcls request or a DeleteAcls filter; AclError for a filter Kafka refuses."""
    acl_filter = AclFilter(_enum(ResourceType, request.resource_type_filter), request.resource_name_filter,
                           _enum(PatternType, request.pattern_type_filter), request.principal_filter,
                           request.host_filter, _enum(Operation, request.operation),
                           _enum(Permission, request.permission_type))
    for name, value in (("resource type", acl_filter.resource_type), ("pattern type", acl_filter.pattern_type),
                        ("operation", acl_filter.operation), ("permission type", acl_filter.permission)):
        if value.name == "UNKNOWN":
            raise AclError(f"Invalid {name} in the filter")
    return acl_filter


def cluster_allowed(ctx: RequestContext, operation: Operation) -> bool:
    return ctx.allowed(operation, ResourceType.CLUSTER, CLUSTER_NAME)


def enabled(ctx: RequestContext) -> bool:
    acls = ctx.services.acls
    return acls is not None and acls.enabled


NOT_ENABLED = "No Authorizer is configured."  # Kafka's words


# Config resource types (DescribeConfigs, AlterConfigs) -> the ACL resource their rights are on,
# and the error a refusal answers, as in Kafka (a broker's configs are the cluster's).
_CONFIG_RESOURCES = {
    2: (ResourceType.TOPIC, None, "topic_authorization_failed"),
    4: (ResourceType.CLUSTER, CLUSTER_NAME, "cluster_authorization_failed"),
    8: (ResourceType.CLUSTER, CLUSTER_NAME, "cluster_authorization_failed"),
    32: (ResourceType.GROUP, None, "group_authorization_failed"),
}


def config_refusal(ctx: RequestContext, operation: Operation, resource_type: int, name: str):
    """The ErrorCode refusing `operation` on a config resource, or None when allowed."""
    from odradek.protocol.errors import ErrorCode

    target = _CONFIG_RESOURCES.get(resource_type)
    if target is None:
        return None
    acl_type, fixed_name, error = target
    if ctx.allowed(operation, acl_type, fixed_name or name):
        return None
    return ErrorCode[error]
