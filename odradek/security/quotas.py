"""Client quotas: how many bytes a second a user or client id may produce and fetch, and how much
of the broker's time its requests may take, as Kafka's ClientQuotaManager enforces them.

Quotas are set on entities (AlterClientQuotas, `kafka-configs --entity-type users|clients`):
a user, a client id, a user and client id together, or the defaults of either (a None name). For
each quota key, a request's (user, client id) takes the first entity that sets that key, in
Kafka's order:
  user+client-id, user+<default client>, user, <default user>+client-id,
  <default user>+<default client>, <default user>, client-id, <default client>.
The entity found also says who shares the budget: a user's quota is shared by all its client
ids, a default quota gives each user (or client id) a budget of its own.

Usage is measured as Kafka's Rate does: `quota.window.num` samples of `quota.window.size.seconds`,
and never over less than all but one of them, so a client's first second may burst to what the
whole window allows. A request that takes the rate past the bound is answered in full, with the
time the client must wait (`throttle_time_ms`, KIP-219: `(rate - bound) / bound * window`), and
its connection reads nothing more until then. `request_percentage` counts the time the event loop
spent on the client's requests: 100 is the whole loop.

`controller_mutation_rate` (KIP-599) is partitions created or deleted a second, by CreateTopics,
CreatePartitions and DeleteTopics, measured with Kafka's token bucket (see MutationQuota).

Used on the event loop; not thread-safe.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping

from odradek.protocol.errors import ErrorCode, KafkaError

USER, CLIENT_ID, IP = "user", "client-id", "ip"
ENTITY_TYPES = (USER, CLIENT_ID, IP)

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"

# Kafka's quota configs and their types, for users and client ids, and for IP addresses.
CLIENT_QUOTA_KEYS = {PRODUCER_BYTE_RATE: "long", CONSUMER_BYTE_RATE: "long", REQUEST_PERCENTAGE: "double",
                     CONTROLLER_MUTATION_RATE: "double"}
IP_QUOTA_KEYS = {CONNECTION_CREATION_RATE: "int"}
_TYPE_MAX = {"int": 2**31 - 1, "long": 2**63 - 1}

# An entity: (type, name) pairs sorted by type; a None name is that type's default.
Entity = tuple[tuple[str, str | None], ...]

SENSOR_EXPIRY_MS = 3_600_000  # a client's usage is forgotten after an hour without requests, as Kafka does


class QuotaError(Exception):
    """An entity or value AlterClientQuotas and DescribeClientQuotas refuse: INVALID_REQUEST
    unless said otherwise, with a message for the client."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.invalid_request) -> None:
        super().__init__(message)
        self.code = code


def entity_of(pairs: Iterable[tuple[str, str | None]]) -> Entity:
    """An entity from (type, name) pairs, checked as Kafka checks AlterClientQuotas entities."""
    pairs = list(pairs)
    if not pairs:
        raise QuotaError("Invalid empty client quota entity")
    seen: dict[str, str | None] = {}
    for entity_type, name in pairs:
        if entity_type in seen:
            raise QuotaError(f"Invalid client quota entity, duplicate entity entry {entity_type}")
        if entity_type not in ENTITY_TYPES:
            raise QuotaError(f"Unhandled client quota entity type: {entity_type}")
        if name == "":
            raise QuotaError(f"Empty {entity_type} not supported")
        seen[entity_type] = name
    if IP in seen:
        if len(seen) > 1:
            raise QuotaError("Invalid quota entity combination, IP entity should not be combined with User or ClientId")
        if seen[IP] is not None and not _is_ip(seen[IP]):
            raise QuotaError(f"{seen[IP]} is not a valid IP or resolvable host.")
    return tuple(sorted(seen.items()))


def describe_entity(entity: Entity) -> str:
    """An entity as log lines and error messages name it: user 'alice', client-id <default>."""
    return ", ".join(f"{kind} {'<default>' if name is None else repr(name)}" for kind, name in entity)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def keys_for(entity: Entity) -> dict[str, str]:
    """The quota keys an entity may have, with their types."""
    return IP_QUOTA_KEYS if entity[0][0] == IP else CLIENT_QUOTA_KEYS


def check_value(entity: Entity, key: str, value: float) -> None:
    """QuotaError unless `key` is a quota of this kind of entity and `value` fits it."""
    kind = keys_for(entity).get(key)
    if kind is None:
        raise QuotaError(f"Invalid configuration key {key}")
    if not value > 0.0 or math.isinf(value):
        raise QuotaError(f"Quota {key} must be greater than 0")
    if kind in _TYPE_MAX:
        if value > _TYPE_MAX[kind]:
            raise QuotaError(f"Proposed value for {key} is too large for {'an INT' if kind == 'int' else 'a LONG'}.")
        if abs(value % 1.0) > 1e-6:
            raise QuotaError(f"{key} cannot be a fractional value.")


def stored_text(key: str, value: float) -> str:
    """A quota value as the metadata store keeps it: whole numbers for integer keys, as Kafka writes them."""
    kind = CLIENT_QUOTA_KEYS.get(key) or IP_QUOTA_KEYS.get(key)
    return str(int(value)) if kind in _TYPE_MAX else repr(float(value))


def parse_stored(values: Mapping[str, str]) -> dict[str, float]:
    """The quota values of a stored config map; other keys (a user's SCRAM credentials) and values
    that are not numbers are left out."""
    parsed = {}
    for key, text in values.items():
        if key in CLIENT_QUOTA_KEYS or key in IP_QUOTA_KEYS:
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue
            if value > 0 and not math.isinf(value):
                parsed[key] = value
    return parsed


def matches(entity: Entity, exact: Mapping[str, str | None], specified: Iterable[str], strict: bool) -> bool:
    """DescribeClientQuotas' filter: every exact component names this entity's name (None: the
    default), every specified type is present, and with `strict` nothing else is."""
    names = dict(entity)
    specified = set(specified)
    if strict and len(names) != len(exact) + len(specified):
        return False
    return all(kind in names and names[kind] == name for kind, name in exact.items()) \
        and all(kind in names for kind in specified)


class Rate:
    """Kafka's Rate over a SampledStat: values in up to `samples` windows of `window_ms`, each
    window opened by the first record after the previous one ended; the rate divides their sum by
    the time since the oldest window began, counted as at least `samples - 1` whole windows."""

    __slots__ = ("samples", "window_ms", "_windows", "last_record_ms")

    def __init__(self, samples: int, window_ms: float) -> None:
        self.samples = max(samples, 1)
        self.window_ms = max(window_ms, 1.0)
        self._windows: deque[list[float]] = deque(maxlen=self.samples)  # [start ms, sum]
        self.last_record_ms = 0.0

    def record(self, value: float, now_ms: float) -> None:
        windows = self._windows
        if not windows or now_ms - windows[-1][0] >= self.window_ms:
            windows.append([now_ms, 0.0])
        windows[-1][1] += value
        self.last_record_ms = now_ms

    def _purge(self, now_ms: float) -> None:
        windows, expiry = self._windows, self.samples * self.window_ms
        while windows and now_ms - windows[0][0] >= expiry:
            windows.popleft()

    def window_size_ms(self, now_ms: float) -> float:
        self._purge(now_ms)
        elapsed = now_ms - self._windows[0][0] if self._windows else 0.0
        full = int(elapsed // self.window_ms)
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return max(elapsed, 1.0)

    def per_second(self, now_ms: float) -> float:
        window = self.window_size_ms(now_ms)
        return sum(total for _, total in self._windows) * 1000.0 / window


class TokenBucket:
    """Kafka's TokenBucket: up to `burst` tokens, refilled at `rate` a second; it starts full, and
    what is taken may leave it below zero."""

    __slots__ = ("tokens", "last_ms", "last_record_ms")

    def __init__(self) -> None:
        self.tokens = math.inf
        self.last_ms = 0.0
        self.last_record_ms = 0.0

    def level(self, rate: float, burst: float, now_ms: float) -> float:
        self.tokens = min(burst, self.tokens + rate * max(now_ms - self.last_ms, 0.0) / 1000.0)
        self.last_ms = now_ms
        return self.tokens


class MutationQuota:
    """A client's `controller_mutation_rate` for one CreateTopics, CreatePartitions or DeleteTopics
    request, as Kafka's ControllerMutationQuota counts it: each topic's partitions, created or
    deleted, are taken from a token bucket of `rate * controller.quota.window.num *
    controller.quota.window.size.seconds` tokens refilled at `rate` a second.

    Strict (the request versions that know THROTTLING_QUOTA_EXCEEDED: CreateTopics v6+,
    CreatePartitions v3+, DeleteTopics v5+): a topic is refused with that error once the bucket is
    below zero, and the answer says how long until it is not; a topic that finds tokens left goes
    through even if it takes the bucket below zero. Permissive (older versions): every topic goes
    through, and the answer tells the client to wait while the bucket is below zero. Either way the
    connection reads nothing more until that wait is over."""

    def __init__(self, bucket: TokenBucket, rate: float, burst: float, strict: bool,
                 now_ms: Callable[[], float]) -> None:
        self._bucket = bucket
        self._rate = rate
        self._burst = burst
        self._strict = strict
        self._now_ms = now_ms
        self._throttle_ms = 0.0
        self._throttled_at = 0.0

    def record(self, partitions: int) -> None:
        """Count a topic's `partitions`; KafkaError(THROTTLING_QUOTA_EXCEEDED) when strict and the
        bucket is already below zero (nothing is counted then)."""
        now = self._now_ms()
        bucket = self._bucket
        level = bucket.level(self._rate, self._burst, now)
        if self._strict and level < 0:
            self._throttle(level, now)
            raise KafkaError(ErrorCode.throttling_quota_exceeded, "The throttling quota has been exceeded.")
        bucket.tokens = min(self._burst, level - partitions)
        bucket.last_record_ms = now
        if not self._strict and bucket.tokens < 0:
            self._throttle(bucket.tokens, now)

    def _throttle(self, level: float, now: float) -> None:
        self._throttle_ms = min(-level / self._rate * 1000.0, _TYPE_MAX["int"])  # throttle_time_ms is an int32
        self._throttled_at = now

    @property
    def throttle_ms(self) -> int:
        """How long the client must wait, counted from now (the request may have waited since)."""
        return max(0, int(round(self._throttle_ms - (self._now_ms() - self._throttled_at)))) if self._throttle_ms else 0


class ClientQuotas:
    """Every client quota of the broker and the usage measured against them."""

    def __init__(self, window_num: int = 11, window_size_s: int = 1,
                 now_ms: Callable[[], float] = lambda: time.monotonic() * 1000,
                 mutation_window_num: int = 11, mutation_window_size_s: int = 1) -> None:
        self.window_num = max(window_num, 1)
        self.window_ms = max(window_size_s, 1) * 1000.0
        self.mutation_window_s = max(mutation_window_num, 1) * max(mutation_window_size_s, 1)
        self._now_ms = now_ms
        # per key: (user part, client part) -> bound; a part is None when the entity lacks that
        # type, DEFAULT for the type's default, else the name
        self._bounds: dict[str, dict[tuple, float]] = {}
        self._ip_bounds: dict[str | None, float] = {}
        self._usage: dict[tuple[str, str, str], Rate] = {}
        self._next_sweep_ms = 0.0
        self.throttled: Counter = Counter()  # quota key -> responses that told a client to wait
        self.produce_enabled = self.fetch_enabled = self.request_enabled = self.mutation_enabled = False

    @property
    def enabled(self) -> bool:
        """Whether the dispatcher charges requests (controller mutations are charged by their handlers)."""
        return self.produce_enabled or self.fetch_enabled or self.request_enabled

    def configure(self, entries: Mapping[Entity, Mapping[str, float]]) -> None:
        """Replace the quotas set (what the metadata store holds). Usage measured so far is kept."""
        bounds: dict[str, dict[tuple, float]] = {key: {} for key in CLIENT_QUOTA_KEYS}
        ip_bounds: dict[str | None, float] = {}
        for entity, values in entries.items():
            names = dict(entity)
            if IP in names:
                if CONNECTION_CREATION_RATE in values:
                    ip_bounds[names[IP]] = values[CONNECTION_CREATION_RATE]
                continue
            part = (_part(names, USER), _part(names, CLIENT_ID))
            for key, value in values.items():
                if key in bounds:
                    bounds[key][part] = value
        self._bounds, self._ip_bounds = bounds, ip_bounds
        self.produce_enabled = bool(bounds[PRODUCER_BYTE_RATE])
        self.fetch_enabled = bool(bounds[CONSUMER_BYTE_RATE])
        self.request_enabled = bool(bounds[REQUEST_PERCENTAGE])
        self.mutation_enabled = bool(bounds[CONTROLLER_MUTATION_RATE])

    # -- enforcement -------------------------------------------------------------------------

    def bound(self, key: str, user: str, client_id: str) -> tuple[tuple[str, str], float] | None:
        """Who shares the budget (user, client id; "" for a part that does not count) and the
        bound, from the first entity in Kafka's order that sets `key`; None when none does."""
        bounds = self._bounds.get(key)
        if not bounds:
            return None
        for user_part, client_part in ((user, client_id), (user, DEFAULT), (user, None), (DEFAULT, client_id),
                                       (DEFAULT, DEFAULT), (DEFAULT, None), (None, client_id), (None, DEFAULT)):
            value = bounds.get((user_part, client_part))
            if value is not None:
                return (user if user_part is not None else "", client_id if client_part is not None else ""), value
        return None

    def record(self, key: str, user: str, client_id: str, value: float, *, max_throttle_ms: float | None = None) -> int:
        """Count `value` against the client's `key` quota; the milliseconds it must now wait (0 when
        within its quota or when it has none)."""
        found = self.bound(key, user, client_id)
        if found is None:
            return 0
        (user_tag, client_tag), bound = found
        now = self._now_ms()
        throttle = self._throttle_after(self._usage_of(key, user_tag, client_tag, now), value, bound, now, max_throttle_ms)
        if throttle is None:
            return 0
        self.throttled[key] += 1
        return int(round(throttle))

    @staticmethod
    def _throttle_after(usage: Rate, value: float, bound: float, now: float, max_throttle_ms: float | None) -> float | None:
        """Record `value`; None within `bound`, else the wait in ms that brings the rate back to
        it (Kafka's formula: (rate - bound) / bound * window), capped at `max_throttle_ms`."""
        usage.record(value, now)
        measured = usage.per_second(now)
        if measured <= bound:
            return None
        throttle = (measured - bound) / bound * usage.window_size_ms(now)
        return throttle if max_throttle_ms is None else min(throttle, max_throttle_ms)

    def unrecord(self, key: str, user: str, client_id: str, value: float) -> None:
        """Take back a recorded value (a throttled fetch is answered empty, so its bytes do not count)."""
        found = self.bound(key, user, client_id)
        if found is not None:
            (user_tag, client_tag), _ = found
            now = self._now_ms()
            self._usage_of(key, user_tag, client_tag, now).record(-value, now)

    def max_in_window(self, key: str, user: str, client_id: str) -> float:
        """The most that can be recorded at once without certain throttling: what the quota allows
        over all but one sample (Kafka caps a consumer's fetch size by it)."""
        found = self.bound(key, user, client_id)
        if found is None:
            return math.inf
        return found[1] * (self.window_num - 1) * self.window_ms / 1000.0

    def request_time(self, user: str, client_id: str, seconds: float) -> int:
        """Count event-loop time against `request_percentage` (100 = the whole loop); the throttle,
        never more than one sample window, as Kafka bounds request throttling."""
        return self.record(REQUEST_PERCENTAGE, user, client_id, seconds * 100.0, max_throttle_ms=self.window_ms)

    def connection_throttle(self, ip: str) -> int:
        """Count a new connection from `ip` against its `connection_creation_rate` (or the IP
        default); the milliseconds until the rate allows it, at most one window, when it does not.
        A refused connection is not counted, as in Kafka."""
        bound = self._ip_bounds.get(ip)
        if bound is None:
            bound = self._ip_bounds.get(None)
        if bound is None:
            return 0
        now = self._now_ms()
        usage = self._usage_of(CONNECTION_CREATION_RATE, ip, "", now)
        throttle = self._throttle_after(usage, 1.0, bound, now, self.window_ms)
        if throttle is None:
            return 0
        usage.record(-1.0, now)
        return int(round(throttle))

    def mutation_quota(self, user: str, client_id: str, strict: bool) -> MutationQuota | None:
        """The client's controller_mutation_rate for one request; None when it has none."""
        found = self.bound(CONTROLLER_MUTATION_RATE, user, client_id)
        if found is None:
            return None
        (user_tag, client_tag), rate = found
        rate = max(rate, 1e-9)  # AlterClientQuotas takes only rates above 0
        bucket = self._usage_of(CONTROLLER_MUTATION_RATE, user_tag, client_tag, self._now_ms(), TokenBucket)
        return MutationQuota(bucket, rate, rate * self.mutation_window_s, strict, self._now_ms)

    def _usage_of(self, key: str, user_tag: str, client_tag: str, now: float, kind: type = Rate):
        if now >= self._next_sweep_ms:
            self._next_sweep_ms = now + 60_000
            for name in [name for name, rate in self._usage.items() if now - rate.last_record_ms > SENSOR_EXPIRY_MS]:
                del self._usage[name]
        name = (key, user_tag, client_tag)
        usage = self._usage.get(name)
        if usage is None:
            usage = self._usage[name] = Rate(self.window_num, self.window_ms) if kind is Rate else kind()
        return usage


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


DEFAULT = _Default()


def _part(names: Mapping[str, str | None], kind: str):
    if kind not in names:
        return None
    return DEFAULT if names[kind] is None else names[kind]


def user_of(principal: str) -> str:
    """The user name quotas know a principal by: "alice" for User:alice."""
    return principal.split(":", 1)[1] if ":" in principal else principal
