"""What a handler may reach: the broker's services, and facts about the request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from odradek.replica.fetch_sessions import FetchSessionCache
from odradek.security.quotas import ClientQuotas, MutationQuota, user_of

if TYPE_CHECKING:
    from odradek.clock import Clock
    from odradek.cluster.acls import AclService
    from odradek.cluster.controller import Controller
    from odradek.cluster.delegation_tokens import DelegationTokens
    from odradek.cluster.metadata import BrokerRegistration, Endpoint, MetadataCache, MetadataImage
    from odradek.cluster.dynamic_config import DynamicConfigs
    from odradek.cluster.membership import ClusterMembership
    from odradek.config import BrokerConfig
    from odradek.coordinator.group_coordinator import GroupCoordinator
    from odradek.coordinator.producer_ids import ProducerIdManager
    from odradek.coordinator.transaction_coordinator import TransactionCoordinator
    from odradek.replica.manager import ReplicaManager
    from odradek.security.session import Session


ANONYMOUS = "User:ANONYMOUS"


@dataclass
class BrokerServices:
    """The layers below the handlers, assembled once per broker. Cluster facts (brokers,
    topics, leaders) come from `metadata.image`, never from the controller's own state."""

    config: BrokerConfig
    node_id: int
    cluster_id: str
    clock: Clock
    metadata: MetadataCache
    controller: Controller
    replicas: ReplicaManager
    producer_ids: ProducerIdManager
    groups: GroupCoordinator
    transactions: TransactionCoordinator
    configs: DynamicConfigs
    membership: ClusterMembership | None = None  # cluster mode: registration, controller, ISR writes
    acls: AclService | None = None  # ACLs and the authorizer (authorizer.class.name); None: everything allowed
    tokens: DelegationTokens | None = None  # delegation tokens (delegation.token.secret.key)
    quotas: ClientQuotas = field(default_factory=ClientQuotas)  # client quotas and the usage measured against them
    fetch_sessions: FetchSessionCache = field(default_factory=FetchSessionCache)  # KIP-227 incremental fetch sessions


@dataclass(frozen=True)
class RequestContext:
    """One request: who sent it, on which listener, and the metadata image it is answered from."""

    services: BrokerServices
    api_version: int
    response_class: type  # the kio response entity of this API and version
    client_id: str | None
    peer: str
    listener_name: str = "PLAINTEXT"
    principal: str = ANONYMOUS
    image: MetadataImage | None = None
    session: Session | None = None  # the connection's authentication state (SaslHandshake, SaslAuthenticate)

    def mutation_quota(self, strict_since: int) -> MutationQuota | None:
        """The client's controller_mutation_rate for this request, strict from version
        `strict_since` on (see security/quotas.py); None when no such quota applies to it."""
        quotas = self.services.quotas
        if not quotas.mutation_enabled:
            return None
        return quotas.mutation_quota(user_of(self.principal), self.client_id or "", self.api_version >= strict_since)

    def mutation_throttle(self, quota: MutationQuota | None) -> timedelta:
        """The answer's throttle time for `quota`; the connection then reads nothing more until it passes."""
        throttle_ms = quota.throttle_ms if quota is not None else 0
        if throttle_ms and self.session is not None:
            self.session.throttle_ms = max(self.session.throttle_ms, throttle_ms)
        return timedelta(milliseconds=throttle_ms)

    @property
    def client_host(self) -> str:
        """The client's address, as ACL hosts name it."""
        return self.peer.rsplit(":", 1)[0] if ":" in self.peer else self.peer

    def allowed(self, operation: int, resource_type: int, name: str) -> bool:
        """Whether this request's principal may do `operation` (security/acl.py's numbers) on the
        resource; always, when no authorizer is configured."""
        acls = self.services.acls
        authorizer = acls.authorizer if acls is not None else None
        return authorizer is None or authorizer.authorize(self.principal, self.client_host, operation, resource_type, name)

    def authorized_operations(self, resource_type: int, name: str) -> int:
        """Kafka's `authorized_operations` bit field (bit n: operation n allowed) for this principal;
        every operation the resource type has when no authorizer is configured, as Kafka answers."""
        from odradek.security.acl import SUPPORTED_OPERATIONS

        operations = SUPPORTED_OPERATIONS.get(resource_type, ())
        acls = self.services.acls
        if acls is None or acls.authorizer is None:
            return sum(1 << int(op) for op in operations)
        return acls.authorizer.authorized_operations(self.principal, self.client_host, resource_type, name, operations)

    def may_request_tokens(self) -> bool:
        """Kafka's rule for delegation token requests: only from a client that proved who it is
        (SASL, or a client certificate on SSL), and not with a token."""
        protocol = self.services.config.security_protocol_of(self.listener_name)
        if self.session is not None and self.session.token_authenticated:
            return False
        return protocol.startswith("SASL_") or (protocol == "SSL" and self.principal != ANONYMOUS)

    def endpoint_of(self, broker: BrokerRegistration) -> Endpoint | None:
        """Where a client on this request's listener reaches `broker` (None: not on this listener)."""
        return broker.endpoint(self.listener_name)


class CloseConnection(Exception):
    """Raised by a handler when the only correct answer is to drop the connection
    (a failed acks=0 produce: the producer learns of the error only this way)."""
