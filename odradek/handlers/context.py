"""What a handler may reach: the broker's services, and facts about the request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odradek.clock import Clock
    from odradek.cluster.controller import Controller
    from odradek.cluster.dynamic_config import DynamicConfigs
    from odradek.config import BrokerConfig
    from odradek.coordinator.group_coordinator import GroupCoordinator
    from odradek.coordinator.producer_ids import ProducerIdManager
    from odradek.replica.manager import ReplicaManager


@dataclass
class BrokerServices:
    """The layers below the handlers, assembled once per broker."""

    config: BrokerConfig
    node_id: int
    cluster_id: str
    advertised_host: str
    advertised_port: int
    clock: Clock
    controller: Controller
    replicas: ReplicaManager
    producer_ids: ProducerIdManager
    groups: GroupCoordinator
    configs: DynamicConfigs


@dataclass(frozen=True)
class RequestContext:
    services: BrokerServices
    api_version: int
    response_class: type  # the kio response entity of this API and version
    client_id: str | None
    peer: str


class CloseConnection(Exception):
    """Raised by a handler when the only correct answer is to drop the connection
    (a failed acks=0 produce: the producer learns of the error only this way)."""
