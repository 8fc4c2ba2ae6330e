"""The cluster's ACLs, kept in the metadata store, and this broker's authorizer over them.

Enabled by `authorizer.class.name` (Kafka's class names are accepted and mean this authorizer).
Bindings live in the metadata store in Kafka's ZooKeeper layout, so every broker of a cluster (and
Kafka's own tools reading ZooKeeper) sees the same ones; a change anywhere reaches every broker
through the store's change notifications. The authorizer is rebuilt whole on each change and
swapped in, so a request is decided against one consistent set. Writes block (ZooKeeper): call
them through the controller's `run`.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from odradek.config import ConfigError
from odradek.security.acl import (
    AclBinding,
    AclFilter,
    Authorizer,
    from_stored,
    resource_key,
    stored_entry,
)

log = logging.getLogger(__name__)

KAFKA_AUTHORIZERS = frozenset({
    "kafka.security.authorizer.AclAuthorizer",
    "kafka.security.auth.SimpleAclAuthorizer",
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
})


def authorizer_enabled(config) -> bool:
    """Whether authorizer.class.name turns ACLs on; ConfigError for a class odradek cannot be."""
    name = str(config["authorizer.class.name"] or "").strip()
    if not name:
        return False
    if name not in KAFKA_AUTHORIZERS:
        raise ConfigError(f"authorizer.class.name={name} is not an authorizer odradek provides; use "
                          "kafka.security.authorizer.AclAuthorizer or org.apache.kafka.metadata.authorizer.StandardAuthorizer")
    return True


class AclService:
    def __init__(self, store, config) -> None:
        self.store = store
        self.enabled = authorizer_enabled(config)
        self.super_users = tuple(p.strip() for p in str(config["super.users"] or "").split(";") if p.strip())
        self.allow_everyone = bool(config["allow.everyone.if.no.acl.found"])
        self.authorizer: Authorizer | None = None
        self.reload()

    def reload(self) -> None:
        """Read every binding from the store again and swap the authorizer (blocking)."""
        bindings = []
        for resource, entries in self.store.acls().items():
            for entry in entries:
                try:
                    bindings.append(from_stored(resource, entry))
                except ValueError as error:
                    log.warning("Skipping an ACL: %s", error)
        self.authorizer = Authorizer(bindings, self.super_users, self.allow_everyone) if self.enabled else None
        self._bindings = tuple(bindings)

    @property
    def bindings(self) -> tuple[AclBinding, ...]:
        return self._bindings

    def create(self, bindings: list[AclBinding]) -> None:
        """Add bindings (one store write per resource; existing ones are kept once). Each write
        adds to what is stored at that moment, so bindings another broker adds at the same time
        are kept."""
        by_resource: dict = defaultdict(list)
        for binding in bindings:
            by_resource[resource_key(binding)].append(binding)
        for resource, added in by_resource.items():
            entries = [stored_entry(binding) for binding in added]
            self.store.update_acls(resource, lambda current, entries=entries: current + [
                entry for index, entry in enumerate(entries) if entry not in current and entry not in entries[:index]])
        self.reload()

    def delete(self, filters: list[AclFilter]) -> list[list[AclBinding]]:
        """Remove every binding matching each filter, from what is stored at the moment of each
        write; the bindings each filter removed."""
        removed: list[list[AclBinding]] = [[] for _ in filters]
        for resource in self.store.acls():
            def without(current: list[dict], resource=resource) -> list[dict]:
                kept, matched = [], [[] for _ in filters]
                for entry in current:
                    try:
                        binding = from_stored(resource, entry)
                    except ValueError:
                        kept.append(entry)
                        continue
                    hits = [index for index, f in enumerate(filters) if f.matches(binding)]
                    for index in hits:
                        matched[index].append(binding)
                    if not hits:
                        kept.append(entry)
                outcome[:] = matched
                return kept

            outcome: list = []
            self.store.update_acls(resource, without)
            for index, bindings in enumerate(outcome):
                removed[index].extend(bindings)
        if any(removed):
            self.reload()
        return removed
