"""Configs as DescribeConfigs shows them and AlterConfigs changes them: sources, synonyms, dynamic updates.

A value comes from the most specific place that sets it, as in Kafka:
  topic override (DYNAMIC_TOPIC_CONFIG) > this broker's dynamic config (DYNAMIC_BROKER_CONFIG)
  > the cluster-wide dynamic default (DYNAMIC_DEFAULT_BROKER_CONFIG) > server.properties
  (STATIC_BROKER_CONFIG) > the built-in default (DEFAULT_CONFIG).
Dynamic broker configs are the broker synonyms of topic configs (Kafka's dynamic log configs);
they are kept in the metadata store and take effect at once on every partition. Everything else
in server.properties is read-only while the broker runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from odradek.config import (
    SSL_STORE_CONFIGS,
    BrokerConfig,
    ConfigError,
    Password,
    broker_config_defs,
    broker_synonym_chain,
    broker_synonyms,
    listener_setting,
    group_config_defs,
    render_value,
    topic_config_defs,
    topic_config_defaults,
    validate_topic_configs,
)
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.security import password_encoder
from odradek.security.quotas import Entity, parse_stored, stored_text

log = logging.getLogger(__name__)

DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
GROUP_CONFIG = 8

CONFIG_TYPES = {"boolean": 1, "string": 2, "int": 3, "short": 4, "long": 5, "double": 6, "list": 7, "class": 8, "password": 9}

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
CLUSTER_DEFAULT = ""  # the broker entity name of cluster-wide dynamic defaults


REPLICATION_THROTTLES = frozenset({
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
})


def dynamic_broker_configs() -> frozenset[str]:
    """Broker configs that may change while running: the synonyms of topic configs, the
    replication throttles, and (per broker only) the key and trust stores."""
    return (frozenset(name for topic in topic_config_defs() for name in broker_synonyms(topic))
            | REPLICATION_THROTTLES | SSL_STORE_CONFIGS)


def _per_broker_only(name: str) -> bool:
    """Configs Kafka lets one broker change but not the cluster-wide default: its key stores."""
    found = listener_setting(name)
    return (found[1] if found is not None else name) in SSL_STORE_CONFIGS


@dataclass
class ConfigEntry:
    name: str
    value: str | None
    source: int
    read_only: bool
    sensitive: bool
    type: int
    documentation: str
    synonyms: list[tuple[str, str | None, int]] = field(default_factory=list)


def _shown(value: object, sensitive: bool) -> str | None:
    if sensitive or value is None:
        return None
    if isinstance(value, Password):
        return None
    return render_value(value)


def ensure_cluster_min_insync_replicas(store, static: BrokerConfig) -> None:
    """KIP-966 (Kafka 4.1+): the cluster-wide min.insync.replicas is a dynamic default, written
    once, from the first broker's own value, when the cluster has none. DescribeConfigs then
    shows it as DYNAMIC_DEFAULT_BROKER_CONFIG on every topic and broker, as Kafka does, and it
    can be changed for the whole cluster with kafka-configs --entity-default."""
    defaults = store.broker_configs().get(CLUSTER_DEFAULT, {})
    if "min.insync.replicas" not in defaults:
        store.set_broker_configs(CLUSTER_DEFAULT, {**defaults, "min.insync.replicas": str(static["min.insync.replicas"])})


class DynamicConfigs:
    """Static and dynamic broker configs, and what every config's value and source is."""

    def __init__(self, static: BrokerConfig, store, node_id: int) -> None:
        self.static = static
        self.store = store
        self.node_id = node_id
        # a hook the broker sets: given the config an AlterConfigs would make, refuse it (KafkaError)
        # or return what applies it once stored (a listener's new key store)
        self.check_broker: Callable[[BrokerConfig], Callable[[], None] | None] | None = None
        self._dynamic: dict[str, dict[str, str]] = self._decoded(store.broker_configs())
        self._groups: dict[str, dict[str, str]] = store.group_configs()
        self._users: dict[str, dict[str, str]] = store.user_configs()
        self._quotas: dict[Entity, dict[str, str]] = store.client_quotas()
        self.effective = self._compute_effective()

    def _compute_effective(self, dynamic: Mapping[str, Mapping[str, str]] | None = None) -> BrokerConfig:
        dynamic = self._dynamic if dynamic is None else dynamic
        props = dict(self.static.originals)
        props.update(dynamic.get(CLUSTER_DEFAULT, {}))
        props.update(dynamic.get(str(self.node_id), {}))
        config, _warnings = BrokerConfig.from_properties(props)
        return config

    def _broker_entity(self, name: str) -> str:
        if name not in (CLUSTER_DEFAULT, str(self.node_id)):
            raise KafkaError(
                ErrorCode.invalid_request, f"unexpected broker id {name!r}: this broker is {self.node_id} ('' means all brokers)"
            )
        return name

    # -- describing ---------------------------------------------------------------------------

    def _synonyms(self, name: str, chain: tuple[str, ...], sensitive: bool) -> list[tuple[str, str | None, int]]:
        """Kafka's synonyms of broker config `name`: every place that sets a config of its chain,
        by source (this broker's dynamic config, the cluster-wide default, server.properties, the
        built-in default), then dropped up to the first entry that is `name` itself. So a topic's
        retention.ms lists nothing (and says DEFAULT_CONFIG) when only log.retention.hours is
        set, exactly as Kafka 4.4 answers."""
        definitions = broker_config_defs()
        places = (
            (self._dynamic.get(str(self.node_id), {}), DYNAMIC_BROKER_CONFIG),
            (self._dynamic.get(CLUSTER_DEFAULT, {}), DYNAMIC_DEFAULT_BROKER_CONFIG),
            (self.static.originals, STATIC_BROKER_CONFIG),
        )
        layers = [(n, None if sensitive else values[n], source) for values, source in places for n in chain if n in values]
        layers += [(n, _shown(definitions[n].default, sensitive), DEFAULT_CONFIG) for n in chain if definitions[n].default is not None]
        first = next((i for i, (n, _v, _s) in enumerate(layers) if n == name), len(layers))
        return layers[first:]

    def describe_broker(self, entity: str, keys: Iterable[str] | None) -> list[ConfigEntry]:
        """One broker's configs; for the cluster-wide default entity ('') only those set there, as Kafka."""
        self._broker_entity(entity)
        dynamic = dynamic_broker_configs()
        definitions = broker_config_defs()
        cluster_defaults = self._dynamic.get(CLUSTER_DEFAULT, {})
        entries = []
        for name, definition in sorted(definitions.items()):
            if keys is not None and name not in keys:
                continue
            if entity == CLUSTER_DEFAULT and name not in cluster_defaults:
                continue
            sensitive = definition.type == "password"
            synonyms = self._synonyms(name, broker_synonym_chain(name), sensitive)
            if entity == CLUSTER_DEFAULT:
                synonyms = [layer for layer in synonyms if layer[2] == DYNAMIC_DEFAULT_BROKER_CONFIG]
                value = None if sensitive else cluster_defaults[name]
            else:
                value = _shown(self.effective[name], sensitive)
            source = synonyms[0][2] if synonyms else DEFAULT_CONFIG
            entries.append(
                ConfigEntry(name, value, source, name not in dynamic, sensitive, CONFIG_TYPES[definition.type], definition.doc, synonyms)
            )
        if entity != CLUSTER_DEFAULT:  # a listener's own key store, set dynamically
            for name, value in sorted(self._dynamic.get(entity, {}).items()):
                found = listener_setting(name)
                if found is None or found[2] is None or (keys is not None and name not in keys):
                    continue
                definition = found[2]
                sensitive = definition.type == "password"
                shown = None if sensitive else value
                entries.append(ConfigEntry(name, shown, DYNAMIC_BROKER_CONFIG, False, sensitive, CONFIG_TYPES[definition.type],
                                           definition.doc, [(name, shown, DYNAMIC_BROKER_CONFIG)]))
        return entries

    def describe_topic(self, overrides: Mapping[str, str], keys: Iterable[str] | None) -> list[ConfigEntry]:
        defaults = topic_config_defaults(self.effective)
        entries = []
        for name, definition in sorted(topic_config_defs().items()):
            if keys is not None and name not in keys:
                continue
            sensitive = definition.type == "password"
            synonyms: list[tuple[str, str | None, int]] = []
            if name in overrides:
                synonyms.append((name, None if sensitive else overrides[name], DYNAMIC_TOPIC_CONFIG))
            chain = broker_synonyms(name)
            if chain:  # a topic config with no broker synonym (the throttled replicas) lists none, as in Kafka
                synonyms += self._synonyms(chain[0], chain, sensitive)
            source = synonyms[0][2] if synonyms else DEFAULT_CONFIG
            value = overrides[name] if name in overrides else _shown(defaults.get(name), sensitive)
            entries.append(
                ConfigEntry(name, None if sensitive else value, source, False, sensitive, CONFIG_TYPES[definition.type], definition.doc, synonyms)
            )
        return entries

    # -- groups (KIP-848 group configs) -------------------------------------------------------

    def group_value(self, group_id: str, name: str) -> int:
        """A group config's value: the group's own setting, else its broker synonym's."""
        definition = group_config_defs()[name]
        raw = self._groups.get(group_id, {}).get(name)
        return definition.parse(raw) if raw is not None else self.effective[definition.synonym]

    def group_overrides(self, group_id: str) -> dict[str, str]:
        return dict(self._groups.get(group_id, {}))

    def describe_group(self, group_id: str, keys: Iterable[str] | None) -> list[ConfigEntry]:
        """A group's configs, with GROUP_CONFIG for its own settings and the broker synonyms behind
        them (any group id, existing or not, as Kafka answers)."""
        overrides = self._groups.get(group_id, {})
        entries = []
        for name, definition in sorted(group_config_defs().items()):
            if keys is not None and name not in keys:
                continue
            synonyms: list[tuple[str, str | None, int]] = []
            if name in overrides:
                synonyms.append((name, overrides[name], GROUP_CONFIG))
            synonyms += self._synonyms(definition.synonym, broker_synonym_chain(definition.synonym), False)
            source = synonyms[0][2] if synonyms else DEFAULT_CONFIG
            value = _shown(self.group_value(group_id, name), False)
            entries.append(ConfigEntry(name, value, source, False, False, CONFIG_TYPES[definition.type], definition.doc, synonyms))
        return entries

    def alter_group(self, group_id: str, new_values: Mapping[str, str], *, validate_only: bool) -> None:
        """Replace a group's configs, validated against the broker's bounds as Kafka's GroupConfig does."""
        if not group_id:
            raise KafkaError(ErrorCode.invalid_request, "the group id is empty")
        definitions = group_config_defs()
        unknown = sorted(name for name in new_values if name not in definitions)
        if unknown:
            raise KafkaError(ErrorCode.invalid_config, f"unknown group config(s): {', '.join(unknown)} "
                             f"(supported: {', '.join(sorted(definitions))})")
        try:
            values = {name: definitions[name].parse(value) for name, value in new_values.items()}
        except ConfigError as error:
            raise KafkaError(ErrorCode.invalid_config, str(error)) from None
        for name, low, high in (
            ("consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms", "group.consumer.max.session.timeout.ms"),
            ("consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms"),
        ):
            if name in values and values[name] < self.effective[low]:
                raise KafkaError(ErrorCode.invalid_config, f"{name} must be greater than or equal to {low} ({self.effective[low]})")
            if name in values and values[name] > self.effective[high]:
                raise KafkaError(ErrorCode.invalid_config, f"{name} must be less than or equal to {high} ({self.effective[high]})")
        session = values.get("consumer.session.timeout.ms", self.effective["group.consumer.session.timeout.ms"])
        heartbeat = values.get("consumer.heartbeat.interval.ms", self.effective["group.consumer.heartbeat.interval.ms"])
        if heartbeat >= session:
            raise KafkaError(ErrorCode.invalid_config, f"consumer.heartbeat.interval.ms ({heartbeat}) must be less than "
                             f"consumer.session.timeout.ms ({session})")
        if validate_only:
            return
        self.store.set_group_configs(group_id, dict(new_values))  # first: a failed write changes nothing
        if new_values:
            self._groups[group_id] = dict(new_values)
        else:
            self._groups.pop(group_id, None)

    # -- altering -----------------------------------------------------------------------------

    @staticmethod
    def apply_operations(current: Mapping[str, str], operations: list[tuple[str, int, str | None]], definitions) -> dict[str, str]:
        """New overrides after IncrementalAlterConfigs operations; INVALID_CONFIG for a bad one."""
        result = dict(current)
        for name, operation, value in operations:
            definition = definitions.get(name)
            if definition is None and definitions is broker_config_defs():
                found = listener_setting(name)  # listener.name.<l>.<config>
                definition = found[2] if found is not None else None
            if definition is None:
                raise KafkaError(ErrorCode.invalid_config, f"unknown config '{name}'")
            if operation == SET:
                if value is None:
                    raise KafkaError(ErrorCode.invalid_config, f"config '{name}' needs a value to SET")
                result[name] = value
            elif operation == DELETE:
                result.pop(name, None)
            elif operation in (APPEND, SUBTRACT):
                if definition.type != "list":
                    raise KafkaError(ErrorCode.invalid_config, f"config '{name}' is not a list; APPEND and SUBTRACT need one")
                existing = result.get(name, render_value(definition.default) if definition.default is not None else "")
                items = [item for item in existing.split(",") if item]
                changes = [item.strip() for item in (value or "").split(",") if item.strip()]
                if operation == APPEND:
                    items += [item for item in changes if item not in items]
                else:
                    items = [item for item in items if item not in changes]
                result[name] = ",".join(items)
            else:
                raise KafkaError(ErrorCode.invalid_request, f"unknown config operation {operation} for '{name}'")
        return result

    @staticmethod
    def validate_topic_overrides(overrides: Mapping[str, str]) -> None:
        try:
            validate_topic_configs(overrides)
        except ConfigError as error:
            raise KafkaError(ErrorCode.invalid_config, str(error)) from None

    def alter_broker(self, entity: str, new_values: Mapping[str, str], *, validate_only: bool) -> bool:
        """Replace the dynamic configs of a broker entity; returns True if the effective config changed."""
        entity = self._broker_entity(entity)
        definitions = broker_config_defs()
        unknown, refused = [], []
        for name, value in new_values.items():
            definition = self._dynamic_definition(name)
            if definition is None:
                (refused if name in definitions or listener_setting(name) is not None else unknown).append(name)
                continue
            try:
                definition.parse(value)
            except ConfigError as error:
                raise KafkaError(ErrorCode.invalid_config, str(error)) from None
        if unknown:
            raise KafkaError(ErrorCode.invalid_config, f"unknown broker config(s): {', '.join(sorted(unknown))}")
        if refused:
            raise KafkaError(ErrorCode.invalid_config, f"cannot update these configs dynamically: {', '.join(sorted(refused))}")
        if entity == CLUSTER_DEFAULT:
            per_broker = sorted(name for name in new_values if _per_broker_only(name))
            if per_broker:
                raise KafkaError(ErrorCode.invalid_request, "Cannot update these configs at default cluster level, "
                                 f"broker id must be specified: {', '.join(per_broker)}")
            if "min.insync.replicas" not in new_values:
                # KIP-966: Kafka keeps the cluster-wide value once written (see ensure_cluster_min_insync_replicas)
                raise KafkaError(ErrorCode.invalid_config, "Cluster-level min.insync.replicas cannot be removed (KIP-966); set another value instead")
        stored = self._encoded(new_values)
        candidate = self._compute_effective({**self._dynamic, entity: dict(new_values)})
        apply = self.check_broker(candidate) if self.check_broker is not None else None
        if validate_only:
            return False
        self.store.set_broker_configs(entity, stored)  # first: a failed write changes nothing
        self._dynamic[entity] = dict(new_values)
        before = self.effective
        self.effective = candidate
        if apply is not None:
            apply()
        return dict(before.items()) != dict(self.effective.items())

    def _dynamic_definition(self, name: str):
        """The definition of a config that may be set dynamically (listener-prefixed key stores of
        this broker's listeners too), else None."""
        found = listener_setting(name)
        if found is not None:
            listener, setting, definition = found
            known = {l.name.lower() for l in self.static.listeners}
            return definition if setting in SSL_STORE_CONFIGS and listener in known else None
        return broker_config_defs()[name] if name in dynamic_broker_configs() else None

    def _encoded(self, values: Mapping[str, str]) -> dict[str, str]:
        """Values as stored: secrets encrypted with password.encoder.secret, which they require."""
        secret = self.static["password.encoder.secret"]
        stored = {}
        for name, value in values.items():
            if self._is_secret(name):
                if secret is None:
                    raise KafkaError(ErrorCode.invalid_config, f"{name} is a secret and password.encoder.secret is not "
                                     "set: a secret set dynamically is stored encrypted with it")
                value = password_encoder.encode(secret.value, value, iterations=self.static["password.encoder.iterations"],
                                                key_length=self.static["password.encoder.key.length"])
            stored[name] = value
        return stored

    def _decoded(self, stored: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
        """Stored dynamic configs with their secrets decrypted; a secret that cannot be (another
        password.encoder.secret) is left out with a warning, as Kafka does."""
        secret = self.static["password.encoder.secret"]
        decoded: dict[str, dict[str, str]] = {}
        for entity, values in stored.items():
            decoded[entity] = {}
            for name, value in values.items():
                if self._is_secret(name):
                    try:
                        if secret is None:
                            raise password_encoder.PasswordDecodeError("password.encoder.secret is not set")
                        value = password_encoder.decode(secret.value, value)
                    except password_encoder.PasswordDecodeError as error:
                        log.warning("Dynamic config %s of broker %s ignored: %s", name, entity or "<default>", error)
                        continue
                decoded[entity][name] = value
        return decoded

    @staticmethod
    def _is_secret(name: str) -> bool:
        found = listener_setting(name)
        definition = found[2] if found is not None else broker_config_defs().get(name)
        return definition is not None and definition.type == "password"

    def reload(self) -> bool:
        """Read the dynamic configs from the store again (another broker changed them, in cluster
        mode); returns True if this broker's effective config changed. Blocking: a worker thread."""
        self._dynamic = self._decoded(self.store.broker_configs())
        self._groups = self.store.group_configs()
        self._users = self.store.user_configs()
        self._quotas = self.store.client_quotas()
        before = self.effective
        self.effective = self._compute_effective()
        return dict(before.items()) != dict(self.effective.items())

    def user_configs(self, user: str) -> dict[str, str]:
        """A user's configs (its SCRAM credentials), from memory: safe on the event loop."""
        return dict(self._users.get(user, {}))

    def users(self) -> list[str]:
        return sorted(self._users)

    def set_user_configs(self, user: str, values: Mapping[str, str]) -> None:
        """Store first (a failed write changes nothing), then remember. Blocking in cluster mode."""
        self.store.set_user_configs(user, dict(values))
        if values:
            self._users[user] = dict(values)
        else:
            self._users.pop(user, None)

    def client_quotas(self) -> dict[Entity, dict[str, float]]:
        """Every client quota set, from memory: safe on the event loop."""
        return {entity: parsed for entity, values in self._quotas.items() if (parsed := parse_stored(values))}

    def set_client_quotas(self, entity: Entity, values: Mapping[str, float]) -> None:
        """Store first, then remember. Blocking in cluster mode."""
        stored = {key: stored_text(key, value) for key, value in values.items()}
        self.store.set_client_quotas(entity, stored)
        if stored:
            self._quotas[entity] = stored
        else:
            self._quotas.pop(entity, None)

    def broker_overrides(self, entity: str) -> dict[str, str]:
        return dict(self._dynamic.get(self._broker_entity(entity), {}))
