"""Single-node metadata: topics, dynamic configs, quotas, ACLs, delegation tokens and producer-id
blocks in one JSON file, replaced atomically.

File: `<first log dir>/odradek-metadata.json`. Every change rewrites it (temp file, fsync,
rename, fsync of the directory), so a crash leaves either the old or the new version.
Changes are rare (topic creation, deletion, a block of 1000 producer ids), never per message.
Each topic carries a version, bumped by every write (compare-and-set as the interface asks).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from odradek.cluster.store import BadVersionError, MetadataStoreError, TopicRecord

FILE_NAME = "odradek-metadata.json"
FORMAT_VERSION = 1


class LocalMetadataStore:
    FILE_NAME = FILE_NAME

    @staticmethod
    def exists(directory: Path) -> bool:
        return (Path(directory) / FILE_NAME).exists()

    def __init__(self, directory: Path, *, cluster_id: str | None = None) -> None:
        self.path = Path(directory) / FILE_NAME
        self._topics: dict[str, TopicRecord] = {}
        self._versions: dict[str, int] = {}
        self._listeners: list = []
        self._next_producer_id = 0
        self._broker_configs: dict[str, dict[str, str]] = {}
        self._group_configs: dict[str, dict[str, str]] = {}
        self._user_configs: dict[str, dict[str, str]] = {}
        self._client_quotas: dict[tuple[tuple[str, str | None], ...], dict[str, str]] = {}
        self._acls: dict[tuple[str, str, str], list[dict]] = {}
        self._delegation_tokens: dict[str, dict] = {}
        self.cluster_id = ""
        if self.path.exists():
            self._load()
            if cluster_id and cluster_id != self.cluster_id:
                raise MetadataStoreError(
                    f"cluster.id {cluster_id} does not match the cluster id {self.cluster_id} stored in {self.path}"
                )
        else:
            self.cluster_id = cluster_id or new_cluster_id()
            self._save()

    def topics(self) -> dict[str, TopicRecord]:
        return dict(self._topics)

    def topic_version(self, name: str) -> int:
        return self._versions.get(name, -1) if name in self._topics else -1

    def put_topic(self, record: TopicRecord, *, expected_version: int | None = None) -> int:
        self._check_version(record.name, expected_version)
        version = self.topic_version(record.name) + 1
        self._topics[record.name] = record
        self._versions[record.name] = version
        self._save()
        self._notify("topic", record.name)
        return version

    def remove_topic(self, name: str, *, expected_version: int | None = None) -> None:
        self._check_version(name, expected_version)
        self._topics.pop(name, None)
        self._versions.pop(name, None)
        self._save()
        self._notify("topic", name)

    def watch(self, listener) -> None:
        self._listeners.append(listener)

    def _check_version(self, name: str, expected_version: int | None) -> None:
        if expected_version is not None and expected_version != self.topic_version(name):
            raise BadVersionError(
                f"topic {name} is at version {self.topic_version(name)}, the write expected {expected_version}"
            )

    def _notify(self, kind: str, key: str) -> None:
        for listener in list(self._listeners):
            listener(kind, key)

    def broker_configs(self) -> dict[str, dict[str, str]]:
        return {entity: dict(configs) for entity, configs in self._broker_configs.items()}

    def set_broker_configs(self, entity: str, configs: dict[str, str]) -> None:
        if configs:
            self._broker_configs[entity] = dict(configs)
        else:
            self._broker_configs.pop(entity, None)
        self._save()
        self._notify("broker_configs", entity)

    def group_configs(self) -> dict[str, dict[str, str]]:
        return {group: dict(configs) for group, configs in self._group_configs.items()}

    def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None:
        if configs:
            self._group_configs[group_id] = dict(configs)
        else:
            self._group_configs.pop(group_id, None)
        self._save()
        self._notify("group_configs", group_id)

    def user_configs(self) -> dict[str, dict[str, str]]:
        return {user: dict(configs) for user, configs in self._user_configs.items()}

    def set_user_configs(self, user: str, configs: dict[str, str]) -> None:
        if configs:
            self._user_configs[user] = dict(configs)
        else:
            self._user_configs.pop(user, None)
        self._save()
        self._notify("user_configs", user)

    def client_quotas(self) -> dict[tuple[tuple[str, str | None], ...], dict[str, str]]:
        return {entity: dict(values) for entity, values in self._client_quotas.items()}

    def set_client_quotas(self, entity: tuple[tuple[str, str | None], ...], values: dict[str, str]) -> None:
        if values:
            self._client_quotas[entity] = dict(values)
        else:
            self._client_quotas.pop(entity, None)
        self._save()
        self._notify("client_quotas", repr(entity))

    def acls(self) -> dict[tuple[str, str, str], list[dict]]:
        return {resource: [dict(entry) for entry in entries] for resource, entries in self._acls.items()}

    def set_acls(self, resource: tuple[str, str, str], entries: list[dict]) -> None:
        if entries:
            self._acls[resource] = [dict(entry) for entry in entries]
        else:
            self._acls.pop(resource, None)
        self._save()
        self._notify("acls", "/".join(resource))

    def update_acls(self, resource: tuple[str, str, str], change) -> None:
        current = [dict(entry) for entry in self._acls.get(resource, [])]
        entries = change(current)
        if entries != current:
            self.set_acls(resource, entries)

    def delegation_tokens(self) -> dict[str, dict]:
        return {token_id: dict(stored) for token_id, stored in self._delegation_tokens.items()}

    def set_delegation_token(self, token_id: str, stored: dict | None) -> None:
        if stored is None and token_id not in self._delegation_tokens:
            return
        if stored is None:
            del self._delegation_tokens[token_id]
        else:
            self._delegation_tokens[token_id] = dict(stored)
        self._save()
        self._notify("delegation_tokens", token_id)

    def allocate_producer_id_block(self, size: int) -> int:
        first = self._next_producer_id
        self._next_producer_id += size
        self._save()
        return first

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            self.cluster_id = data["cluster_id"]
            self._next_producer_id = int(data.get("next_producer_id", 0))
            self._broker_configs = {str(k): dict(v) for k, v in data.get("broker_configs", {}).items()}
            self._group_configs = {str(k): dict(v) for k, v in data.get("group_configs", {}).items()}
            self._user_configs = {str(k): dict(v) for k, v in data.get("user_configs", {}).items()}
            self._client_quotas = {tuple((str(kind), None if name is None else str(name)) for kind, name in q["entity"]):
                                   {str(k): str(v) for k, v in q["values"].items()}
                                   for q in data.get("client_quotas", [])}
            self._acls = {(str(r["resource_type"]), str(r["pattern_type"]), str(r["name"])): list(r["acls"])
                          for r in data.get("acls", [])}
            self._delegation_tokens = {str(k): dict(v) for k, v in data.get("delegation_tokens", {}).items()}
            for entry in data.get("topics", []):
                record = TopicRecord(
                    name=entry["name"],
                    topic_id=uuid.UUID(entry["topic_id"]),
                    partitions=int(entry["partitions"]),
                    replication_factor=int(entry.get("replication_factor", 1)),
                    configs=dict(entry.get("configs", {})),
                    assignment=tuple(tuple(int(b) for b in replicas) for replicas in entry.get("assignment", ())),
                )
                self._topics[record.name] = record
                self._versions[record.name] = int(entry.get("version", 0))
        except (ValueError, KeyError, TypeError) as error:
            raise MetadataStoreError(f"metadata file {self.path} is unreadable: {error}") from None

    def _save(self) -> None:
        data = {
            "version": FORMAT_VERSION,
            "cluster_id": self.cluster_id,
            "next_producer_id": self._next_producer_id,
            "broker_configs": self._broker_configs,
            "group_configs": self._group_configs,
            "user_configs": self._user_configs,
            "client_quotas": [{"entity": [list(pair) for pair in entity], "values": values}
                              for entity, values in sorted(self._client_quotas.items(), key=lambda item: repr(item[0]))],
            "acls": [{"resource_type": kind, "pattern_type": pattern, "name": name, "acls": entries}
                     for (kind, pattern, name), entries in sorted(self._acls.items())],
            "delegation_tokens": self._delegation_tokens,
            "topics": [
                {
                    "name": record.name,
                    "topic_id": str(record.topic_id),
                    "partitions": record.partitions,
                    "replication_factor": record.replication_factor,
                    "configs": record.configs,
                    "assignment": [list(replicas) for replicas in record.assignment],
                    "version": self._versions.get(record.name, 0),
                }
                for record in sorted(self._topics.values(), key=lambda r: r.name)
            ],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        with open(temporary, "w") as file:
            json.dump(data, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def new_cluster_id() -> str:
    """22 characters of URL-safe base64 over 16 random bytes, like Kafka's cluster ids."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
