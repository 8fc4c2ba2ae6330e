"""Single-node metadata: topics, dynamic broker configs and producer-id blocks in one JSON file,
replaced atomically.

File: `<first log dir>/odradek-metadata.json`. Every change rewrites it (temp file, fsync,
rename, fsync of the directory), so a crash leaves either the old or the new version.
Changes are rare (topic creation, deletion, a block of 1000 producer ids), never per message.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from odradek.cluster.store import MetadataStoreError, TopicRecord

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
        self._next_producer_id = 0
        self._broker_configs: dict[str, dict[str, str]] = {}
        self.cluster_id = ""
        if self.path.exists():
            self._load()
            if cluster_id and cluster_id != self.cluster_id:
                raise MetadataStoreError(
                    f"cluster.id {cluster_id} does not match the cluster id {self.cluster_id} stored in {self.path}"
                )
        else:
            self.cluster_id = cluster_id or _new_cluster_id()
            self._save()

    def topics(self) -> dict[str, TopicRecord]:
        return dict(self._topics)

    def put_topic(self, record: TopicRecord) -> None:
        self._topics[record.name] = record
        self._save()

    def remove_topic(self, name: str) -> None:
        self._topics.pop(name, None)
        self._save()

    def broker_configs(self) -> dict[str, dict[str, str]]:
        return {entity: dict(configs) for entity, configs in self._broker_configs.items()}

    def set_broker_configs(self, entity: str, configs: dict[str, str]) -> None:
        if configs:
            self._broker_configs[entity] = dict(configs)
        else:
            self._broker_configs.pop(entity, None)
        self._save()

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
            for entry in data.get("topics", []):
                record = TopicRecord(
                    name=entry["name"],
                    topic_id=uuid.UUID(entry["topic_id"]),
                    partitions=int(entry["partitions"]),
                    replication_factor=int(entry.get("replication_factor", 1)),
                    configs=dict(entry.get("configs", {})),
                )
                self._topics[record.name] = record
        except (ValueError, KeyError, TypeError) as error:
            raise MetadataStoreError(f"metadata file {self.path} is unreadable: {error}") from None

    def _save(self) -> None:
        data = {
            "version": FORMAT_VERSION,
            "cluster_id": self.cluster_id,
            "next_producer_id": self._next_producer_id,
            "broker_configs": self._broker_configs,
            "topics": [
                {
                    "name": record.name,
                    "topic_id": str(record.topic_id),
                    "partitions": record.partitions,
                    "replication_factor": record.replication_factor,
                    "configs": record.configs,
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


def _new_cluster_id() -> str:
    """22 characters of URL-safe base64 over 16 random bytes, like Kafka's cluster ids."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
