"""Broker and topic configuration: one table of definitions, and the parsers built on it.

Owns the names, types, defaults, validators and docs of every config odradek knows
(`CONFIG_DEFS`), the Java `.properties` reader, the typed `BrokerConfig`, and topic-config
validation. The same table feeds `server.properties` parsing, DescribeConfigs and the
generated docs, so a config is added in exactly one place.

Names, types, defaults and semantics are Kafka's. Deliberate differences are said in the
config's doc (for example the default data directory, `./odradek-data`).

This module does no I/O beyond what its caller hands it and must not import the broker.
"""

from __future__ import annotations

import difflib
import math
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "CONFIG_DEFS",
    "AtLeast",
    "Between",
    "BrokerConfig",
    "ConfigDef",
    "ConfigError",
    "Listener",
    "OneOf",
    "Password",
    "broker_config_defs",
    "broker_synonyms",
    "describe_doc_markdown",
    "parse_listeners",
    "parse_properties",
    "parse_value",
    "topic_config_defaults",
    "topic_config_defs",
    "group_config_defs",
    "validate_topic_configs",
]

LONG_MAX = 2**63 - 1
_INT_RANGES = {
    "short": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}
CONFIG_TYPES = ("string", "int", "long", "short", "boolean", "list", "double", "password")


class ConfigError(ValueError):
    """A config that cannot be accepted. The message is one line meant for the user."""


class Password:
    """A secret config value: its `str`/`repr` never show it; `.value` does."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "[hidden]"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Password) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


# ---------------------------------------------------------------------------------------
# Validators: called with the typed value, return None when fine or the expectation
# ("a value at least 14") when not. `str()` renders the valid values for the docs.


@dataclass(frozen=True)
class AtLeast:
    minimum: float

    def __call__(self, value: object) -> str | None:
        if value is not None and value < self.minimum:  # type: ignore[operator]
            return f"a value at least {_fmt_number(self.minimum)}"
        return None

    def __str__(self) -> str:
        return f"[{_fmt_number(self.minimum)},...]"


@dataclass(frozen=True)
class Between:
    minimum: float
    maximum: float

    def __call__(self, value: object) -> str | None:
        if value is not None and not self.minimum <= value <= self.maximum:  # type: ignore[operator]
            return f"a value between {_fmt_number(self.minimum)} and {_fmt_number(self.maximum)}"
        return None

    def __str__(self) -> str:
        return f"[{_fmt_number(self.minimum)},...,{_fmt_number(self.maximum)}]"


@dataclass(frozen=True)
class OneOf:
    """Value (or, for a list, each element) must be one of `choices`."""

    choices: tuple[str, ...]
    case_sensitive: bool = True

    def __call__(self, value: object) -> str | None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                continue
            if self.case_sensitive:
                ok = item in self.choices
            else:
                ok = str(item).lower() in {c.lower() for c in self.choices}
            if not ok:
                return "one of " + ", ".join(map(str, self.choices))
        return None

    def __str__(self) -> str:
        return "[" + ", ".join(map(str, self.choices)) + "]"


@dataclass(frozen=True)
class ThrottledReplicaList:
    """`*`, or partition:broker entries (Kafka's ThrottledReplicaListValidator)."""

    def __call__(self, value: object) -> str | None:
        items = [str(item).strip() for item in value] if isinstance(value, list) else []
        if items == ["*"] or all(re.fullmatch(r"\d+\s*:\s*\d+", item) for item in items):
            return None
        return "* or a list of replicas as partitionId:brokerId,partitionId:brokerId,..."

    def __str__(self) -> str:
        return "[partitionId]:[brokerId],[partitionId]:[brokerId],..."


def _fmt_number(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


# ---------------------------------------------------------------------------------------
# The table.


@dataclass(frozen=True)
class ConfigDef:
    """One config: its Kafka name, type, default (typed; None means unset), validator, doc.

    `scope` is "broker" (server.properties), "topic" (CreateTopics / AlterConfigs) or "group"
    (a consumer group's own settings, IncrementalAlterConfigs on resource type GROUP). A topic or
    group config's `synonym` names the broker config that supplies its default.
    """

    name: str
    type: str
    default: object
    doc: str
    scope: str = "broker"
    validator: Callable[[object], str | None] | None = None
    synonym: str | None = None

    def __post_init__(self) -> None:
        if self.type not in CONFIG_TYPES:
            raise TypeError(f"config {self.name!r}: unknown type {self.type!r}")
        if self.scope not in ("broker", "topic", "group"):
            raise TypeError(f"config {self.name!r}: unknown scope {self.scope!r}")

    def parse(self, raw: str | None) -> object:
        """The typed value of `raw`, validated; raises ConfigError naming this config."""
        value = parse_value(self.name, self.type, raw, nullable=self.default is None)
        if self.validator is not None and value is not None:
            expected = self.validator(value)
            if expected is not None:
                raise ConfigError(_invalid(self.name, raw, expected))
        return value


def _b(name, type_, default, doc, validator=None) -> ConfigDef:
    return ConfigDef(name, type_, default, doc, "broker", validator)


def _t(name, type_, default, synonym, doc, validator=None) -> ConfigDef:
    return ConfigDef(name, type_, default, doc, "topic", validator, synonym)


def _g(name, type_, synonym, doc) -> ConfigDef:
    return ConfigDef(name, type_, None, doc, "group", None, synonym)


_CLEANUP_POLICIES = OneOf(("delete", "compact"))
_TIMESTAMP_TYPES = OneOf(("CreateTime", "LogAppendTime"))
_COMPRESSION_TYPES = OneOf(("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"))
_DEFAULT_PROTOCOL_MAP = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"

CONFIG_DEFS: tuple[ConfigDef, ...] = (
    # --- broker: identity and listeners ---
    _b("node.id", "int", -1,
       "The id of this broker. Synonym of broker.id: set either (if both are set they must "
       "agree). When neither is set a single node uses id 0.", AtLeast(-1)),
    _b("broker.id", "int", -1, "Synonym of node.id, the name older Kafka files use.", AtLeast(-1)),
    _b("listeners", "list", ["PLAINTEXT://localhost:9092"],
       "Comma-separated NAME://host:port addresses to listen on. An empty host listens on all "
       "interfaces (0.0.0.0); IPv6 hosts go in brackets ([::1]); port 0 picks a free port."),
    _b("advertised.listeners", "list", None,
       "Addresses given to clients in Metadata responses, same form as listeners. "
       "Unset means the same as listeners."),
    _b("listener.security.protocol.map", "string", _DEFAULT_PROTOCOL_MAP,
       "Listener name to security protocol, NAME:PROTOCOL pairs separated by commas."),
    _b("inter.broker.listener.name", "string", None,
       "The listener brokers use to talk to each other; unset means the first listener."),
    _b("broker.rack", "string", None,
       "The rack (or zone) of this broker: replicas are spread over racks, and consumers with "
       "client.rack may fetch from a replica in theirs."),
    _b("cluster.id", "string", None,
       "The cluster id. Unset: odradek generates one on first start and stores it in "
       "meta.properties in each log dir."),
    _b("zookeeper.connect", "string", None,
       "ZooKeeper connection string (host:port,...[/chroot]). Setting it selects cluster mode: brokers "
       "register there, elect a controller and replicate partitions."),
    _b("zookeeper.session.timeout.ms", "int", 18000, "ZooKeeper session timeout (cluster mode)."),
    _b("zookeeper.connection.timeout.ms", "int", None,
       "Time to wait for a ZooKeeper connection; unset means zookeeper.session.timeout.ms."),
    # --- broker: storage ---
    _b("log.dirs", "list", None,
       "Comma-separated directories holding the partition logs. Unset means log.dir."),
    _b("log.dir", "string", "./odradek-data",
       "The data directory used when log.dirs is unset. odradek's default is ./odradek-data "
       "(relative to the working directory), a deliberate difference from Kafka's "
       "/tmp/kafka-logs, which many systems wipe on reboot."),
    _b("num.partitions", "int", 1, "Default partition count for auto-created topics.", AtLeast(1)),
    _b("default.replication.factor", "int", 1,
       "Default replication factor for auto-created topics.", AtLeast(1)),
    _b("auto.create.topics.enable", "boolean", True,
       "Create a topic when a client asks for metadata of an unknown topic and allows auto-creation "
       "(producers do; Produce itself never creates a topic, as in Kafka)."),
    _b("delete.topic.enable", "boolean", True, "Allow topics to be deleted."),
    _b("min.insync.replicas", "int", 1,
       "Default for the topic config min.insync.replicas.", AtLeast(1)),
    _b("unclean.leader.election.enable", "boolean", False,
       "Default for the topic config unclean.leader.election.enable."),
    _b("compression.type", "string", "producer",
       "Default for the topic config compression.type.", _COMPRESSION_TYPES),
    _b("log.segment.bytes", "int", 1073741824, "Maximum size of one log segment file.", AtLeast(14)),
    _b("log.roll.ms", "long", None,
       "Roll a new segment after this long even if it is not full; unset means log.roll.hours."),
    _b("log.roll.hours", "int", 168, "Segment roll time in hours, used when log.roll.ms is unset.",
       AtLeast(1)),
    _b("log.roll.jitter.ms", "long", None, "Maximum random jitter subtracted from the roll time; "
       "unset means log.roll.jitter.hours."),
    _b("log.roll.jitter.hours", "int", 0, "Roll jitter in hours, used when log.roll.jitter.ms "
       "is unset.", AtLeast(0)),
    _b("log.index.interval.bytes", "int", 4096,
       "Bytes of log between two offset-index entries.", AtLeast(0)),
    _b("log.index.size.max.bytes", "int", 10485760,
       "Maximum size of an offset index file.", AtLeast(4)),
    _b("log.preallocate", "boolean", False, "Preallocate segment files (topic default)."),
    _b("log.segment.delete.delay.ms", "long", 60000,
       "Wait before deleting a segment file removed from the log.", AtLeast(0)),
    _b("message.max.bytes", "int", 1048588,
       "Largest record batch the broker accepts (after compression).", AtLeast(0)),
    _b("log.message.timestamp.type", "string", "CreateTime",
       "Whether record timestamps are the producer's (CreateTime) or the broker's append time "
       "(LogAppendTime).", _TIMESTAMP_TYPES),
    _b("log.flush.interval.messages", "long", LONG_MAX,
       "fsync a partition after this many messages; the default leaves flushing to the OS.",
       AtLeast(1)),
    _b("log.flush.interval.ms", "long", None,
       "fsync a partition when its oldest unflushed message is this old; unset means "
       "log.flush.scheduler.interval.ms."),
    _b("log.flush.scheduler.interval.ms", "long", LONG_MAX,
       "How often the flusher checks whether a log needs flushing."),
    _b("log.cleanup.policy", "list", ["delete"],
       "Default cleanup policy: delete old segments, compact by key, or both.", _CLEANUP_POLICIES),
    _b("log.retention.hours", "int", 168,
       "Keep log segments this many hours; used when log.retention.ms and .minutes are unset."),
    _b("log.retention.minutes", "int", None,
       "Retention in minutes; used when log.retention.ms is unset."),
    _b("log.retention.ms", "long", None,
       "Retention in milliseconds; takes precedence over minutes and hours. -1 keeps forever."),
    _b("log.retention.bytes", "long", -1,
       "Maximum size of a partition log before old segments are deleted; -1 means no limit."),
    _b("log.retention.check.interval.ms", "long", 300000,
       "How often the retention check runs.", AtLeast(1)),
    _b("log.cleaner.enable", "boolean", True,
       "Run the log cleaner, which compacts topics with cleanup.policy=compact (__consumer_offsets is one)."),
    _b("log.cleaner.backoff.ms", "long", 15000,
       "How long the cleaner sleeps when there is nothing to clean.", AtLeast(0)),
    _b("log.cleaner.delete.retention.ms", "long", 86400000,
       "Default for the topic config delete.retention.ms.", AtLeast(0)),
    _b("log.cleaner.min.cleanable.ratio", "double", 0.5,
       "Default for the topic config min.cleanable.dirty.ratio.", Between(0, 1)),
    _b("log.cleaner.min.compaction.lag.ms", "long", 0,
       "Default for the topic config min.compaction.lag.ms.", AtLeast(0)),
    _b("log.cleaner.max.compaction.lag.ms", "long", LONG_MAX,
       "Default for the topic config max.compaction.lag.ms.", AtLeast(1)),
    _b("num.recovery.threads.per.data.dir", "int", 2,
       "Threads per log dir used to recover logs at start-up.", AtLeast(1)),
    # --- broker: network ---
    _b("connections.max.idle.ms", "long", 600000,
       "A client connection with no request for this long is closed (clients reconnect when they need to).",
       AtLeast(1)),
    _b("socket.request.max.bytes", "int", 104857600,
       "Largest request frame accepted; a larger frame closes the connection.", AtLeast(1)),
    _b("socket.request.receive.timeout.ms", "int", 30000,
       "How long a request may take to arrive once its size has, plus one second per MiB of it; a "
       "client trickling a request more slowly (a slowloris) is disconnected. odradek only: Kafka "
       "keeps such a connection as long as bytes keep coming.", AtLeast(1)),
    _b("max.connections", "int", 2147483647,
       "Most client connections the broker serves at once (per listener too: "
       "listener.name.<listener>.max.connections). Beyond it a new connection waits, unread, until "
       "another closes; the inter-broker listener is never held back by the broker-wide limit.", AtLeast(0)),
    _b("max.connections.per.ip", "int", 2147483647,
       "Most connections from one address; one more is closed at once.", AtLeast(0)),
    _b("max.connections.per.ip.overrides", "string", "",
       "Per-address exceptions to max.connections.per.ip: host:count pairs separated by commas."),
    _b("max.connection.creation.rate", "int", 2147483647,
       "Most new connections accepted per second (per listener too); faster ones wait their turn.",
       AtLeast(0)),
    # --- security: TLS (every ssl.* and sasl.* config may be set per listener as
    # listener.name.<listener>.<config>, which wins over the plain one) ---
    _b("ssl.keystore.type", "string", "JKS",
       "Format of the key store: PEM, PKCS12, or JKS (a JKS file written as PKCS12, which keytool does "
       "since Java 9, is read; a true JKS file is refused with the keytool command that converts it)."),
    _b("ssl.keystore.location", "string", None,
       "The broker's key store: its certificate chain and private key (SSL and SASL_SSL listeners). "
       "Re-read when changed dynamically, without a restart."),
    _b("ssl.keystore.password", "password", None, "Password of the key store file (PKCS12)."),
    _b("ssl.key.password", "password", None, "Password of the private key (PEM: an encrypted key)."),
    _b("ssl.keystore.certificate.chain", "password", None,
       "The certificate chain in PEM, inline, instead of ssl.keystore.location (ssl.keystore.type=PEM)."),
    _b("ssl.keystore.key", "password", None,
       "The private key in PEM, inline, instead of ssl.keystore.location (ssl.keystore.type=PEM)."),
    _b("ssl.truststore.type", "string", "JKS", "Format of the trust store: PEM, PKCS12 or JKS (as ssl.keystore.type)."),
    _b("ssl.truststore.location", "string", None,
       "Certificates of the authorities whose client certificates are trusted (mutual TLS)."),
    _b("ssl.truststore.password", "password", None, "Password of the trust store file (PKCS12)."),
    _b("ssl.truststore.certificates", "password", None,
       "Trusted certificates in PEM, inline, instead of ssl.truststore.location."),
    _b("ssl.allow.dn.changes", "boolean", False,
       "Whether a key store changed dynamically may hold a certificate with another subject."),
    _b("ssl.allow.san.changes", "boolean", False,
       "Whether a key store changed dynamically may hold a certificate with other subject alternative names."),
    _b("password.encoder.secret", "password", None,
       "Encrypts secrets set as dynamic broker configs (a new ssl.keystore.password) before they are "
       "stored, as Kafka does; without it such a secret cannot be set dynamically."),
    _b("password.encoder.iterations", "int", 4096,
       "PBKDF2 iterations of the key that encrypts dynamic secrets.", AtLeast(1024)),
    _b("password.encoder.key.length", "int", 128,
       "Length in bits of the AES key that encrypts dynamic secrets: 128, 192 or 256.", OneOf((128, 192, 256))),
    _b("ssl.client.auth", "string", "none",
       "Whether clients of an SSL listener must present a certificate: required, requested or none. "
       "SASL_SSL listeners ignore it unless set on the listener, as in Kafka.",
       OneOf(("required", "requested", "none"))),
    _b("ssl.enabled.protocols", "list", ["TLSv1.2", "TLSv1.3"], "TLS versions accepted.",
       OneOf(("TLSv1.2", "TLSv1.3"))),
    _b("ssl.protocol", "string", "TLSv1.3", "The TLS version preferred (the highest of ssl.enabled.protocols is used)."),
    _b("ssl.cipher.suites", "list", [], "TLS 1.2 cipher suites allowed (OpenSSL or IANA names); empty: the defaults."),
    _b("ssl.principal.mapping.rules", "string", "DEFAULT",
       "Rules that turn a client certificate's distinguished name into a principal name, as in Kafka: "
       "RULE:pattern/replacement/[LU], comma-separated, then DEFAULT (the whole name)."),
    _b("ssl.endpoint.identification.algorithm", "string", "https",
       "Whether this broker checks the host name in the certificates of brokers it connects to "
       "(https) or not (empty)."),
    _b("security.inter.broker.protocol", "string", "PLAINTEXT",
       "Security protocol between brokers when inter.broker.listener.name is not set.",
       OneOf(("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))),
    # --- security: SASL ---
    _b("sasl.enabled.mechanisms", "list", ["GSSAPI"],
       "SASL mechanisms offered on SASL listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. The default is "
       "Kafka's (GSSAPI, i.e. Kerberos), which odradek does not serve: a SASL listener needs this set."),
    _b("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI",
       "SASL mechanism brokers use with each other over a SASL listener."),
    _b("sasl.jaas.config", "password", None,
       "JAAS login configuration, as in Kafka. For PLAIN: "
       "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" "
       "password=\"...\" user_admin=\"...\" user_alice=\"...\"; (user_<name> entries are the "
       "accounts; username/password is what this broker uses towards others). Usually set per "
       "listener and mechanism: listener.name.<listener>.<mechanism>.sasl.jaas.config."),
    _b("sasl.server.max.receive.size", "int", 524288,
       "Largest frame accepted before a client has authenticated; a larger one closes the connection.",
       AtLeast(1)),
    _b("sasl.oauthbearer.jwks.endpoint.url", "string", None,
       "Where the keys that sign OAUTHBEARER tokens are (a JWKS document): a file: URL or an http(s) URL. "
       "Needed for OAUTHBEARER: odradek accepts only signed tokens (RS256..ES512) checked against it."),
    _b("sasl.oauthbearer.expected.issuer", "string", None,
       "When set, an OAUTHBEARER token's iss claim must be this."),
    _b("sasl.oauthbearer.expected.audience", "list", [],
       "When set, an OAUTHBEARER token's aud claim must include one of these."),
    _b("sasl.oauthbearer.sub.claim.name", "string", "sub",
       "The claim naming the principal of an OAUTHBEARER token (User:<its value>)."),
    _b("sasl.oauthbearer.clock.skew.seconds", "int", 30,
       "Allowed difference between the broker's clock and the token issuer's (exp, nbf, iat).", AtLeast(0)),
    # --- security: authorization ---
    _b("authorizer.class.name", "string", "",
       "Turns ACLs on: Kafka's kafka.security.authorizer.AclAuthorizer or "
       "org.apache.kafka.metadata.authorizer.StandardAuthorizer (both mean odradek's authorizer, which keeps "
       "ACLs in the metadata store: /kafka-acl in ZooKeeper). Empty: every client may do everything, "
       "and the ACL APIs answer SECURITY_DISABLED."),
    _b("super.users", "string", None,
       "Principals allowed everything whatever the ACLs say, separated by semicolons: User:admin;User:broker."),
    _b("allow.everyone.if.no.acl.found", "boolean", False,
       "When no ACL covers a resource, allow every principal (true) or none but super users (false)."),
    _b("delegation.token.secret.key", "password", None,
       "Turns delegation tokens on (KIP-48): the key of the HMACs that are the tokens' secrets. Every broker "
       "of a cluster needs the same one. Unset: token requests answer DELEGATION_TOKEN_AUTH_DISABLED."),
    _b("delegation.token.master.key", "password", None,
       "The old name of delegation.token.secret.key, used when that is unset (deprecated in Kafka)."),
    _b("delegation.token.max.lifetime.ms", "long", 604800000,
       "The longest a token can live, renewals included (7 days).", AtLeast(1)),
    _b("delegation.token.expiry.time.ms", "long", 86400000,
       "How long a token lives from its creation or renewal when the request names no period (1 day).",
       AtLeast(1)),
    _b("delegation.token.expiry.check.interval.ms", "long", 3600000,
       "How often expired tokens are removed from the metadata store (they stop logging in at once).",
       AtLeast(1)),
    _b("connections.max.reauth.ms", "long", 0,
       "When above 0, an authenticated SASL session lasts at most this long (KIP-368): the client "
       "must re-authenticate on the same connection, or is disconnected.", AtLeast(0)),
    _b("socket.send.buffer.bytes", "int", 102400,
       "SO_SNDBUF of accepted client sockets; -1 leaves the kernel's autotuning. A fixed 100 KiB paces a "
       "large Fetch to the consumer's reading, which costs the broker less CPU per byte sent than a "
       "window grown to megabytes.", AtLeast(-1)),
    _b("socket.receive.buffer.bytes", "int", -1,
       "SO_RCVBUF of the listening sockets, which accepted ones inherit; -1 (odradek's default; Kafka's is "
       "102400) leaves the kernel's autotuning, because one event loop reads every connection: a fixed "
       "window stalls a producer while the loop works on other requests.", AtLeast(-1)),
    _b("num.network.threads", "int", 3,
       "Accepted for compatibility; odradek serves all connections on one event loop.", AtLeast(1)),
    _b("num.io.threads", "int", 8,
       "Accepted for compatibility; odradek runs blocking I/O on a worker pool.", AtLeast(1)),
    # --- broker: replication ---
    _b("controlled.shutdown.enable", "boolean", True,
       "Cluster mode: on SIGTERM, move this broker's partition leaderships to other in-sync replicas first."),
    _b("controlled.shutdown.max.retries", "int", 3,
       "Together with the backoff, how long a controlled shutdown waits for leaderships to move.", AtLeast(0)),
    _b("controlled.shutdown.retry.backoff.ms", "long", 5000,
       "See controlled.shutdown.max.retries.", AtLeast(0)),
    _b("auto.leader.rebalance.enable", "boolean", True,
       "Cluster mode: the controller moves leadership back to each partition's preferred (first) replica "
       "every leader.imbalance.check.interval.seconds."),
    _b("leader.imbalance.check.interval.seconds", "long", 300,
       "How often the controller restores preferred leaders.", AtLeast(1)),
    _b("replica.lag.time.max.ms", "long", 30000,
       "A follower that has not caught up to the leader's log end for this long leaves the ISR.",
       AtLeast(0)),
    _b("replica.high.watermark.checkpoint.interval.ms", "long", 5000,
       "How often high watermarks are written to replication-offset-checkpoint.", AtLeast(1)),
    _b("replica.fetch.max.bytes", "int", 1048576,
       "Bytes a follower asks for per partition in one fetch (at least one batch comes anyway).",
       AtLeast(0)),
    _b("replica.fetch.response.max.bytes", "int", 10485760,
       "Bytes a follower asks for in one whole fetch.", AtLeast(0)),
    _b("replica.fetch.wait.max.ms", "int", 500,
       "How long a follower's fetch waits at the leader for new data.", AtLeast(0)),
    _b("replica.fetch.min.bytes", "int", 1,
       "Bytes a follower's fetch waits for at the leader.", AtLeast(1)),
    _b("replica.fetch.backoff.ms", "int", 1000,
       "Pause of a follower's fetcher after a failed fetch.", AtLeast(0)),
    _b("replica.selector.class", "string", None,
       "Which replica a consumer with client.rack should fetch from (KIP-392). Kafka's "
       "org.apache.kafka.common.replica.RackAwareReplicaSelector sends it to an in-sync replica in its "
       "rack; unset, consumers fetch from the leader."),
    _b("num.replica.fetchers", "int", 1,
       "Fetcher connections per source broker (odradek uses one per leader).", AtLeast(1)),
    _b("leader.replication.throttled.rate", "long", LONG_MAX,
       "Bytes per second this broker sends, as leader, for throttled replicas (a topic's "
       "leader.replication.throttled.replicas) that are out of the ISR. Dynamic, per broker; "
       "kafka-reassign-partitions --throttle sets it.", AtLeast(0)),
    _b("follower.replication.throttled.rate", "long", LONG_MAX,
       "Bytes per second this broker fetches, as follower, for throttled replicas (a topic's "
       "follower.replication.throttled.replicas) that are out of the ISR. Dynamic, per broker.", AtLeast(0)),
    _b("replica.alter.log.dirs.io.max.bytes.per.second", "long", LONG_MAX,
       "Kafka's throttle on moving replicas between the log dirs of one broker. Accepted, so "
       "kafka-reassign-partitions can set and clear it; odradek does not move replicas between log dirs.",
       AtLeast(0)),
    _b("replication.quota.window.num", "int", 11,
       "Samples over which replication throttle rates are measured.", AtLeast(1)),
    _b("replication.quota.window.size.seconds", "int", 1,
       "Length of one replication throttle sample.", AtLeast(1)),
    _b("metrics.listener", "string", None,
       "Where the broker serves HTTP, e.g. http://127.0.0.1:9644: Prometheus /metrics, /health and /ready, "
       "the admin REST API under /api (OpenAPI document at /api/openapi.json) and the web console at /ui "
       "(odradek only; Kafka needs a JMX exporter, a REST proxy and a separate UI). Unset: not served."),
    _b("http.authentication.method", "string", "NONE",
       "How callers of metrics.listener log in: NONE (everyone is User:ANONYMOUS) or BASIC (HTTP Basic "
       "with a Kafka user's name and password: SCRAM credentials or a SASL listener's PLAIN accounts). "
       "With an authorizer, the REST API and console show and do only what the caller's ACLs allow; "
       "/health, /ready and /api/openapi.json answer everyone (odradek only).",
       OneOf(("NONE", "BASIC"))),
    _b("max.incremental.fetch.session.cache.slots", "int", 1000,
       "Most incremental fetch sessions (KIP-227) the broker keeps; beyond it a new one may take the "
       "slot of an older, smaller one, else the client keeps sending full fetches.", AtLeast(0)),
    _b("quota.window.num", "int", 11,
       "Samples over which client quota usage (producer_byte_rate, consumer_byte_rate, "
       "request_percentage) is measured.", AtLeast(1)),
    _b("quota.window.size.seconds", "int", 1,
       "Length of one client quota sample.", AtLeast(1)),
    _b("controller.quota.window.num", "int", 11,
       "With controller.quota.window.size.seconds, how many seconds of a client's controller_mutation_rate "
       "its token bucket holds: the partitions it may create or delete at once (KIP-599).", AtLeast(1)),
    _b("controller.quota.window.size.seconds", "int", 1,
       "Length of one controller mutation quota sample.", AtLeast(1)),
    # --- broker: coordinators ---
    _b("offsets.commit.timeout.ms", "int", 5000,
       "How long a group coordinator's write to __consumer_offsets may wait for the in-sync "
       "replicas before the request fails.", AtLeast(1)),
    _b("offsets.topic.num.partitions", "int", 50,
       "Partition count of __consumer_offsets (fixed once created).", AtLeast(1)),
    _b("offsets.topic.replication.factor", "short", 3,
       "Replication factor of __consumer_offsets. Kafka's default of 3; a single node should "
       "set 1, as config/server.properties does.", AtLeast(1)),
    _b("transaction.state.log.num.partitions", "int", 50,
       "Partition count of __transaction_state.", AtLeast(1)),
    _b("transaction.state.log.replication.factor", "short", 3,
       "Replication factor of __transaction_state; a single node should set 1.", AtLeast(1)),
    _b("transaction.state.log.min.isr", "int", 2,
       "min.insync.replicas of __transaction_state (never above its replication factor; 1 on a single node).",
       AtLeast(1)),
    _b("transaction.state.log.segment.bytes", "int", 104857600, "segment.bytes of __transaction_state.", AtLeast(14)),
    _b("transaction.partition.verification.enable", "boolean", True,
       "Before a producer's first transactional write to a partition, check with its transaction "
       "coordinator that the partition is in its open transaction (KIP-890), so a late write of an "
       "aborted transaction cannot leave a transaction open forever.", None),
    _b("transaction.max.timeout.ms", "int", 900000,
       "Largest transaction.timeout.ms a producer may ask for; a larger one fails InitProducerId "
       "with INVALID_TRANSACTION_TIMEOUT.", AtLeast(1)),
    _b("transactional.id.expiration.ms", "int", 604800000,
       "A transactional id with no transaction for this long is forgotten.", AtLeast(1)),
    _b("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", 10000,
       "How often to abort transactions open longer than their timeout.", AtLeast(1)),
    _b("transaction.remove.expired.transaction.cleanup.interval.ms", "int", 3600000,
       "How often to forget transactional ids past transactional.id.expiration.ms.", AtLeast(1)),
    _b("group.initial.rebalance.delay.ms", "int", 3000,
       "How long a new classic group waits for more members before its first rebalance."),
    _b("group.min.session.timeout.ms", "int", 6000, "Smallest session timeout a member may ask for."),
    _b("group.max.session.timeout.ms", "int", 1800000, "Largest session timeout a member may ask for."),
    _b("group.max.size", "int", 2147483647, "Most members a classic group may have.", AtLeast(1)),
    _b("offsets.retention.minutes", "int", 10080,
       "Committed offsets of a group that has been empty this long are removed.", AtLeast(1)),
    _b("offsets.retention.check.interval.ms", "long", 600000,
       "How often to look for expired offsets.", AtLeast(1)),
    _b("offset.metadata.max.bytes", "int", 4096, "Largest metadata string of a committed offset.", AtLeast(0)),
    _b("offsets.topic.segment.bytes", "int", 104857600, "segment.bytes of __consumer_offsets.", AtLeast(14)),
    _b("group.consumer.session.timeout.ms", "int", 45000,
       "Session timeout of members of consumer-protocol (KIP-848) groups.", AtLeast(1)),
    _b("group.consumer.heartbeat.interval.ms", "int", 5000,
       "Heartbeat interval told to members of consumer-protocol (KIP-848) groups.", AtLeast(1)),
    _b("group.consumer.min.session.timeout.ms", "int", 45000,
       "Smallest consumer.session.timeout.ms a consumer-protocol group may set.", AtLeast(1)),
    _b("group.consumer.max.session.timeout.ms", "int", 60000,
       "Largest consumer.session.timeout.ms a consumer-protocol group may set.", AtLeast(1)),
    _b("group.consumer.min.heartbeat.interval.ms", "int", 5000,
       "Smallest consumer.heartbeat.interval.ms a consumer-protocol group may set.", AtLeast(1)),
    _b("group.consumer.max.heartbeat.interval.ms", "int", 15000,
       "Largest consumer.heartbeat.interval.ms a consumer-protocol group may set.", AtLeast(1)),
    _b("group.consumer.migration.policy", "string", "bidirectional",
       "Online conversion of groups between the classic and consumer protocols (KIP-848): "
       "bidirectional, upgrade (classic to consumer only), downgrade (consumer to classic only) or disabled.",
       OneOf(("bidirectional", "upgrade", "downgrade", "disabled"))),
    _b("group.consumer.assignors", "list", ["uniform", "range"],
       "Server-side assignors of consumer-protocol groups; the first is the default."),
    # --- topic ---
    _t("cleanup.policy", "list", ["delete"], "log.cleanup.policy",
       "delete: drop segments past retention; compact: keep the latest record per key.",
       _CLEANUP_POLICIES),
    _t("retention.ms", "long", 604800000, "log.retention.ms",
       "Keep segments this long; -1 keeps forever.", AtLeast(-1)),
    _t("retention.bytes", "long", -1, "log.retention.bytes",
       "Delete old segments when a partition grows past this size; -1 means no limit."),
    _t("segment.bytes", "int", 1073741824, "log.segment.bytes", "Maximum size of one segment file.",
       AtLeast(14)),
    _t("segment.ms", "long", 604800000, "log.roll.ms",
       "Roll a new segment after this long even if it is not full.", AtLeast(1)),
    _t("segment.jitter.ms", "long", 0, "log.roll.jitter.ms",
       "Maximum random jitter subtracted from segment.ms.", AtLeast(0)),
    _t("segment.index.bytes", "int", 10485760, "log.index.size.max.bytes",
       "Maximum size of the offset index of one segment.", AtLeast(4)),
    _t("index.interval.bytes", "int", 4096, "log.index.interval.bytes",
       "Bytes of log between two offset-index entries.", AtLeast(0)),
    _t("flush.messages", "long", LONG_MAX, "log.flush.interval.messages",
       "fsync after this many messages.", AtLeast(1)),
    _t("flush.ms", "long", LONG_MAX, "log.flush.interval.ms",
       "fsync when the oldest unflushed message is this old.", AtLeast(0)),
    _t("max.message.bytes", "int", 1048588, "message.max.bytes",
       "Largest record batch accepted (after compression).", AtLeast(0)),
    _t("message.timestamp.type", "string", "CreateTime", "log.message.timestamp.type",
       "CreateTime or LogAppendTime.", _TIMESTAMP_TYPES),
    _t("min.insync.replicas", "int", 1, "min.insync.replicas",
       "Replicas that must have a write for acks=all to succeed.", AtLeast(1)),
    _t("delete.retention.ms", "long", 86400000, "log.cleaner.delete.retention.ms",
       "How long tombstones are kept on a compacted topic.", AtLeast(0)),
    _t("min.cleanable.dirty.ratio", "double", 0.5, "log.cleaner.min.cleanable.ratio",
       "Compact when this fraction of the log is uncompacted.", Between(0, 1)),
    _t("min.compaction.lag.ms", "long", 0, "log.cleaner.min.compaction.lag.ms",
       "A record stays uncompacted at least this long.", AtLeast(0)),
    _t("max.compaction.lag.ms", "long", LONG_MAX, "log.cleaner.max.compaction.lag.ms",
       "A record becomes eligible for compaction at most this long after it is written.",
       AtLeast(1)),
    _t("compression.type", "string", "producer", "compression.type",
       "Codec of stored batches; producer keeps what the producer sent.", _COMPRESSION_TYPES),
    _t("unclean.leader.election.enable", "boolean", False, "unclean.leader.election.enable",
       "Allow an out-of-sync replica to become leader, at the cost of losing data."),
    _t("preallocate", "boolean", False, "log.preallocate", "Preallocate segment files."),
    _t("file.delete.delay.ms", "long", 60000, "log.segment.delete.delay.ms",
       "Wait before deleting a segment file removed from the log.", AtLeast(0)),
    _t("leader.replication.throttled.replicas", "list", [], None,
       "Replicas (partition:broker, or * for all) whose copying from this topic's leaders is held to "
       "leader.replication.throttled.rate while they are out of the ISR. "
       "kafka-reassign-partitions --throttle sets it.", ThrottledReplicaList()),
    _t("follower.replication.throttled.replicas", "list", [], None,
       "Replicas (partition:broker, or * for all) whose fetching from this topic's leaders is held to "
       "follower.replication.throttled.rate while they are out of the ISR.", ThrottledReplicaList()),
    # --- group (KIP-848 group configs; the broker synonym is the default) ---
    _g("consumer.session.timeout.ms", "int", "group.consumer.session.timeout.ms",
       "This consumer-protocol group's session timeout, between group.consumer.min.session.timeout.ms and "
       "group.consumer.max.session.timeout.ms."),
    _g("consumer.heartbeat.interval.ms", "int", "group.consumer.heartbeat.interval.ms",
       "The heartbeat interval told to this group's consumer-protocol members, between "
       "group.consumer.min.heartbeat.interval.ms and group.consumer.max.heartbeat.interval.ms."),
)

_BY_SCOPE: dict[str, dict[str, ConfigDef]] = {"broker": {}, "topic": {}, "group": {}}
for _def in CONFIG_DEFS:
    if _def.name in _BY_SCOPE[_def.scope]:
        raise TypeError(f"config {_def.name!r} defined twice")
    _BY_SCOPE[_def.scope][_def.name] = _def

# Broker configs that override a topic default's synonym, most specific first
# (Kafka's DescribeConfigs synonym order).
_SYNONYM_CHAINS: dict[str, tuple[str, ...]] = {
    "log.retention.ms": ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    "log.roll.ms": ("log.roll.ms", "log.roll.hours"),
    "log.roll.jitter.ms": ("log.roll.jitter.ms", "log.roll.jitter.hours"),
    "log.flush.interval.ms": ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
}


def broker_config_defs() -> Mapping[str, ConfigDef]:
    """Broker-scope definitions by name."""
    return _BY_SCOPE["broker"]


def topic_config_defs() -> Mapping[str, ConfigDef]:
    """Topic-scope definitions by name."""
    return _BY_SCOPE["topic"]


def group_config_defs() -> Mapping[str, ConfigDef]:
    """Group-scope definitions by name."""
    return _BY_SCOPE["group"]


def broker_synonym_chain(broker_config: str) -> tuple[str, ...]:
    """The broker configs that stand for one another, most specific first, with `broker_config`
    among them (log.retention.ms, .minutes, .hours for any of the three), as DescribeConfigs
    lists synonyms (Kafka's brokerConfigSynonyms); just the name for most."""
    return next((chain for chain in _SYNONYM_CHAINS.values() if broker_config in chain), (broker_config,))


def broker_synonyms(topic_config: str) -> tuple[str, ...]:
    """Broker configs that supply `topic_config`'s default, most specific first."""
    definition = _BY_SCOPE["topic"].get(topic_config)
    if definition is None or definition.synonym is None:
        return ()
    return broker_synonym_chain(definition.synonym)


# ---------------------------------------------------------------------------------------
# Values.


def _invalid(name: str, raw: object, expected: str) -> str:
    shown = raw if isinstance(raw, str) else repr(raw)
    return f"invalid value '{shown}' for config '{name}': expected {expected}"


def parse_value(name: str, type_: str, raw: str | None, *, nullable: bool = False) -> object:
    """Convert `raw` to `type_` the way Kafka's ConfigDef does; ConfigError if it cannot.

    None stays None. For a config whose default is unset (`nullable`), an empty or blank
    value also means unset, so `zookeeper.connect=` in a file does not select cluster mode.
    """
    if raw is None:
        return None
    if type_ == "password":
        return Password(raw)
    text = raw.strip()
    if nullable and not text:
        return None
    if type_ == "string":
        return text
    if type_ == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    if type_ == "boolean":
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ConfigError(_invalid(name, raw, "a boolean (true or false)"))
    if type_ in _INT_RANGES:
        article = "a long integer" if type_ == "long" else "a short integer" if type_ == "short" else "an integer"
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ConfigError(_invalid(name, raw, article))
        value = int(text)
        low, high = _INT_RANGES[type_]
        if not low <= value <= high:
            raise ConfigError(_invalid(name, raw, f"{article} between {low} and {high}"))
        return value
    if type_ == "double":
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(_invalid(name, raw, "a number")) from None
        if math.isnan(value):
            raise ConfigError(_invalid(name, raw, "a number"))
        return value
    raise TypeError(f"unknown config type {type_!r}")


def render_value(value: object) -> str:
    """A typed value back in properties syntax (for docs and DescribeConfigs)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------
# .properties files.

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterator[str]:
    """Java's logical lines: comments and blanks dropped, backslash continuations joined."""
    pending: list[str] | None = None
    # Only \n, \r and \r\n end a line in Java; str.splitlines would also split on \f, \x85, ...
    for natural in re.split(r"\r\n|\r|\n", text):
        line = natural.lstrip(" \t\f")
        if pending is None:
            if not line or line[0] in "#!":
                continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = (pending or []) + [line[:-1]]
            continue
        yield "".join((pending or []) + [line])
        pending = None
    if pending is not None:
        yield "".join(pending)


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java `.properties` text into key -> value strings; a later key wins.

    Supports `#`/`!` comment lines, `key=value`, `key: value` and `key value`, trimmed
    whitespace, backslash line continuation, and `\\t \\n \\r \\f \\uXXXX \\<char>` escapes.
    """
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                break
            i += 1
        key = line[:i]
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        # Trailing whitespace is trimmed unless escaped ("a\ " keeps its space).
        stripped = rest.rstrip(" \t\f")
        if stripped.endswith("\\") and len(stripped) < len(rest):
            stripped = rest[: len(stripped) + 1]
        result[_unescape(key)] = _unescape(stripped)
    return result


# ---------------------------------------------------------------------------------------
# Listeners.

_LISTENER_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)://(\[[^\]]*\]|[^:\[\]/]*):(\d+)$")


class Listener(NamedTuple):
    """One `NAME://host:port` endpoint. host "" is never stored: it becomes 0.0.0.0."""

    name: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
LISTENER_PREFIX = "listener.name."
# A listener's key and trust store: dynamic per broker (plain or listener.name.<l>.-prefixed), so a
# certificate can be replaced without a restart, as in Kafka.
SSL_STORE_CONFIGS = frozenset({
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.truststore.type", "ssl.truststore.location",
    "ssl.truststore.password", "ssl.truststore.certificates",
})


def listener_setting(key: str) -> tuple[str, str, ConfigDef | None] | None:
    """(listener, setting, definition) of a listener.name.<listener>.<setting> key, None for
    another key; the definition is None when a listener may not override the setting."""
    if not key.startswith(LISTENER_PREFIX):
        return None
    return _listener_setting(key, _BY_SCOPE["broker"])
_SASL_MECHANISM_PREFIX = re.compile(r"(?i)(plain|scram-sha-256|scram-sha-512|oauthbearer|gssapi)\.(.+)")


def _listener_setting(key: str, defs: Mapping[str, ConfigDef]) -> tuple[str, str, ConfigDef | None]:
    """(listener, setting, its definition) of a listener.name.<listener>.<setting> key; the
    definition is None when the setting is not one a listener may override."""
    rest = key[len(LISTENER_PREFIX):]
    listener, _, setting = rest.partition(".")
    definition = defs.get(setting)
    if definition is None:
        mechanism = _SASL_MECHANISM_PREFIX.fullmatch(setting)
        if mechanism is not None and mechanism.group(2).startswith("sasl."):
            definition = defs.get(mechanism.group(2))
            setting = f"{mechanism.group(1).lower()}.{mechanism.group(2)}"
    return listener.lower(), setting, definition


def parse_listeners(name: str, entries: list[str]) -> list[Listener]:
    """Parse listener strings of config `name`; ConfigError on a malformed or duplicate one."""
    listeners: list[Listener] = []
    for entry in entries:
        match = _LISTENER_RE.match(entry)
        if match is None:
            raise ConfigError(_invalid(name, entry, "NAME://host:port, for example PLAINTEXT://localhost:9092"))
        listener_name, host, port_text = match.groups()
        port = int(port_text)
        if port > 65535:
            raise ConfigError(_invalid(name, entry, "a port between 0 and 65535"))
        if host.startswith("["):
            host = host[1:-1]
        listener = Listener(listener_name.upper(), host or "0.0.0.0", port)
        if any(existing.name == listener.name for existing in listeners):
            raise ConfigError(
                f"invalid value '{','.join(entries)}' for config '{name}': "
                f"expected each listener to have a different name, found {listener.name} twice"
            )
        listeners.append(listener)
    return listeners


# ---------------------------------------------------------------------------------------
# Broker config.


def _suggestion(key: str, known: Mapping[str, ConfigDef]) -> str | None:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
    return close[0] if close else None


@dataclass(frozen=True, eq=False)
class BrokerConfig:
    """A broker's typed configuration: every broker config, set or defaulted.

    `config["num.partitions"]` is the typed value; properties resolve Kafka's fallbacks
    between related configs. `originals` holds the strings the user set for known keys
    (anything not in it is at its default). Immutable.
    """

    _values: Mapping[str, object]
    originals: Mapping[str, str] = field(default_factory=dict)
    # listener.name.<listener>.<config>: listener name (lower case) -> {config (mechanism-prefixed
    # for SASL settings, e.g. "scram-sha-512.sasl.jaas.config"): typed value}
    listener_settings: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> tuple[BrokerConfig, list[str]]:
        """Build from raw properties; returns the config and warnings (unknown keys).

        Raises ConfigError, one line, for an invalid value or an inconsistent combination.
        """
        defs = _BY_SCOPE["broker"]
        warnings: list[str] = []
        # Copy list defaults so no caller can mutate the table through a config.
        values: dict[str, object] = {
            name: list(d.default) if isinstance(d.default, list) else d.default
            for name, d in defs.items()
        }
        originals: dict[str, str] = {}
        listener_settings: dict[str, dict[str, object]] = {}
        for key, raw in props.items():
            definition = defs.get(key)
            if definition is None and key.startswith(LISTENER_PREFIX):
                listener, setting, definition = _listener_setting(key, defs)
                if definition is not None:
                    listener_settings.setdefault(listener, {})[setting] = definition.parse(raw)
                    originals[key] = raw
                    continue
            if definition is None:
                guess = _suggestion(key, defs)
                hint = f"; did you mean '{guess}'?" if guess else ""
                warnings.append(f"unknown config '{key}' ignored{hint}")
                continue
            parsed = definition.parse(raw)
            if parsed is not None:
                values[key] = parsed
            originals[key] = raw
        config = cls(values, originals, listener_settings)
        config._check()
        return config, warnings

    @classmethod
    def defaults(cls) -> BrokerConfig:
        return cls.from_properties({})[0]

    def _check(self) -> None:
        """Cross-config rules; each property raises ConfigError when its inputs disagree."""
        _ = self.node_id, self.listeners, self.advertised_listeners, self.log_dirs

    def __getitem__(self, name: str) -> object:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"unknown broker config {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def get(self, name: str, default: object = None) -> object:
        return self._values.get(name, default)

    def items(self) -> Iterator[tuple[str, object]]:
        return iter(self._values.items())

    def is_default(self, name: str) -> bool:
        """True when the user did not set `name` (DescribeConfigs source DEFAULT_CONFIG)."""
        return name not in self.originals

    def __repr__(self) -> str:
        return f"BrokerConfig({dict(self.originals)!r})"

    # -- resolved values ---------------------------------------------------------------

    @property
    def node_id(self) -> int:
        node_id, broker_id = self["node.id"], self["broker.id"]
        if node_id != -1 and broker_id != -1 and node_id != broker_id:
            raise ConfigError(
                f"config 'node.id' ({node_id}) and 'broker.id' ({broker_id}) disagree; set only one"
            )
        if node_id != -1:
            return node_id  # type: ignore[return-value]
        if broker_id != -1:
            return broker_id  # type: ignore[return-value]
        return 0

    @property
    def log_dirs(self) -> list[Path]:
        dirs = self["log.dirs"] or [self["log.dir"]]
        return [Path(d) for d in dirs]  # type: ignore[union-attr]

    @property
    def listeners(self) -> list[Listener]:
        listeners = parse_listeners("listeners", self["listeners"])  # type: ignore[arg-type]
        if not listeners:
            raise ConfigError("invalid value '' for config 'listeners': expected at least one listener")
        return listeners

    @property
    def advertised_listeners(self) -> list[Listener]:
        """What clients are told. Unset means `listeners`, with a wildcard host replaced by
        this machine's name (Kafka does the same). Port 0 stays 0: the server substitutes
        the port it bound."""
        explicit = self["advertised.listeners"]
        if explicit is None:
            return [
                l._replace(host=socket.getfqdn()) if l.host in ("0.0.0.0", "::") else l
                for l in self.listeners
            ]
        advertised = parse_listeners("advertised.listeners", explicit)  # type: ignore[arg-type]
        for listener in advertised:
            if listener.host in ("0.0.0.0", "::"):
                raise ConfigError(_invalid(
                    "advertised.listeners", ",".join(explicit),  # type: ignore[arg-type]
                    "routable hosts; 0.0.0.0 cannot be advertised to clients",
                ))
        return advertised

    @property
    def security_protocol_map(self) -> dict[str, str]:
        """listener.security.protocol.map as {listener name: security protocol}."""
        pairs = {}
        for entry in str(self["listener.security.protocol.map"] or "").split(","):
            name, _, protocol = entry.partition(":")
            if name.strip():
                pairs[name.strip()] = protocol.strip() or "PLAINTEXT"
        return pairs

    def for_listener(self, listener: str, name: str, mechanism: str | None = None) -> object:
        """A config as a listener sees it: listener.name.<listener>.<mechanism>.<name>, then
        listener.name.<listener>.<name>, then <name>."""
        settings = self.listener_settings.get(listener.lower(), {})
        if mechanism is not None and f"{mechanism.lower()}.{name}" in settings:
            return settings[f"{mechanism.lower()}.{name}"]
        if name in settings:
            return settings[name]
        return self[name]

    def security_protocol_of(self, listener: str) -> str:
        """The security protocol of a listener: listener.security.protocol.map, else its name
        when that is a protocol's; ConfigError otherwise, as Kafka."""
        protocols = self.security_protocol_map
        protocol = protocols.get(listener) or (listener if listener in SECURITY_PROTOCOLS else None)
        if protocol is None:
            raise ConfigError(
                f"listener {listener} has no security protocol: add {listener}:<PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL> "
                "to listener.security.protocol.map"
            )
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"invalid value '{protocol}' for listener {listener} in listener.security.protocol.map: "
                "expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            )
        return protocol

    @property
    def inter_broker_listener_name(self) -> str:
        """The listener brokers reach each other on: inter.broker.listener.name, else (as Kafka)
        the first listener whose protocol is security.inter.broker.protocol, else the first."""
        named = self["inter.broker.listener.name"]
        if named:
            return named  # type: ignore[return-value]
        wanted = self["security.inter.broker.protocol"]
        for listener in self.listeners:
            if self.security_protocol_map.get(listener.name, listener.name) == wanted:
                return listener.name
        return self.listeners[0].name

    @property
    def controlled_shutdown_timeout_s(self) -> float:
        """How long a stopping broker waits for its leaderships to move (Kafka retries
        controlled.shutdown.max.retries times, controlled.shutdown.retry.backoff.ms apart)."""
        if not self["controlled.shutdown.enable"]:
            return 0.0
        return self["controlled.shutdown.max.retries"] * self["controlled.shutdown.retry.backoff.ms"] / 1000  # type: ignore[operator]

    @property
    def log_roll_ms(self) -> int:
        roll_ms = self["log.roll.ms"]
        return roll_ms if roll_ms is not None else self["log.roll.hours"] * 3_600_000  # type: ignore[return-value,operator]

    @property
    def log_roll_jitter_ms(self) -> int:
        jitter_ms = self["log.roll.jitter.ms"]
        return jitter_ms if jitter_ms is not None else self["log.roll.jitter.hours"] * 3_600_000  # type: ignore[return-value,operator]

    @property
    def flush_interval_ms(self) -> int:
        flush_ms = self["log.flush.interval.ms"]
        return flush_ms if flush_ms is not None else self["log.flush.scheduler.interval.ms"]  # type: ignore[return-value]

    @property
    def retention_ms(self) -> int:
        """log.retention.ms, else .minutes, else .hours, in ms; any negative means -1 (forever)."""
        if self["log.retention.ms"] is not None:
            ms = self["log.retention.ms"]
        elif self["log.retention.minutes"] is not None:
            ms = self["log.retention.minutes"] * 60_000  # type: ignore[operator]
        else:
            ms = self["log.retention.hours"] * 3_600_000  # type: ignore[operator]
        return -1 if ms < 0 else ms  # type: ignore[operator,return-value]


# ---------------------------------------------------------------------------------------
# Topic configs.

_DERIVED_SYNONYMS: dict[str, Callable[[BrokerConfig], object]] = {
    "log.retention.ms": lambda b: b.retention_ms,
    "log.roll.ms": lambda b: b.log_roll_ms,
    "log.roll.jitter.ms": lambda b: b.log_roll_jitter_ms,
    "log.flush.interval.ms": lambda b: b.flush_interval_ms,
}


def topic_config_defaults(broker: BrokerConfig) -> dict[str, object]:
    """Every topic config with its effective default, taken from its broker synonym."""
    defaults: dict[str, object] = {}
    for name, definition in _BY_SCOPE["topic"].items():
        synonym = definition.synonym
        if synonym is None:
            value = definition.default
        elif synonym in _DERIVED_SYNONYMS:
            value = _DERIVED_SYNONYMS[synonym](broker)
        else:
            value = broker[synonym]
        defaults[name] = list(value) if isinstance(value, list) else value
    return defaults


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, object]:
    """Typed values of topic config overrides; ConfigError (one line) for an unknown name or
    a bad value. A None value means "no override" and stays None."""
    defs = _BY_SCOPE["topic"]
    typed: dict[str, object] = {}
    for name, raw in configs.items():
        definition = defs.get(name)
        if definition is None:
            guess = _suggestion(name, defs)
            hint = f"; did you mean '{guess}'?" if guess else ""
            raise ConfigError(f"unknown topic config '{name}'{hint}")
        typed[name] = None if raw is None else definition.parse(raw)
    return typed


# ---------------------------------------------------------------------------------------
# Docs.


def describe_doc_markdown() -> str:
    """The config table as markdown: one section per scope, one row per config."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines: list[str] = []
    scopes = (("broker", "Broker configs (server.properties)"), ("topic", "Topic configs"),
              ("group", "Group configs (kafka-configs --entity-type groups)"))
    for scope, title in scopes:
        lines += [f"## {title}", ""]
        header = "| name | type | default | valid values |"
        rule = "| --- | --- | --- | --- |"
        if scope in ("topic", "group"):
            header += " broker synonym |"
            rule += " --- |"
        lines += [header + " description |", rule + " --- |"]
        for d in sorted(_BY_SCOPE[scope].values(), key=lambda d: d.name):
            row = f"| `{d.name}` | {d.type} | `{cell(render_value(d.default))}` | {cell(str(d.validator or ''))} |"
            if scope in ("topic", "group"):
                row += f" {'`' + d.synonym + '`' if d.synonym else ''} |"
            lines.append(row + f" {cell(d.doc)} |")
        lines.append("")
    return "\n".join(lines)
