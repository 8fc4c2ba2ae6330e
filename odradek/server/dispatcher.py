"""Frame in, frame out: decode the header and body with kio, call the handler, encode the answer.

Answers that cannot come from a handler are made here: an ApiVersions request above our range
(the v0-layout UNSUPPORTED_VERSION answer), Produce v0-v2 (advertised, refused), and requests for
an API or version we do not serve. A body that does not decode raises FrameError, which closes
the connection.

Client quotas are charged here, as Kafka's request handler charges them: a Produce's request
bytes, a consumer Fetch's response bytes, and the event-loop time of every request (decoding,
the handler's own steps, not its waits, and encoding) when a `request_percentage` is set. A
client over a quota gets the wait in `throttle_time_ms` and its connection reads nothing more
until then (session.throttle_ms); a throttled Fetch is answered empty and its bytes not counted.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import struct
import time
from datetime import timedelta
from functools import cache

from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from odradek.handlers import api_versions
from odradek.handlers.context import ANONYMOUS, BrokerServices, CloseConnection, RequestContext
from odradek.handlers.fetch import replica_id_of
from odradek.handlers.registry import HANDLERS
from odradek.protocol.schemas import request_class, response_class
from odradek.handlers.responses import error_response
from odradek.protocol.errors import ErrorCode
from odradek.protocol.fetch_response import FetchAnswer
from odradek.protocol.metadata_response import metadata_response_body
from odradek.protocol.produce_request import is_produce_request, produce_request_reader
from odradek.protocol.produce_response import ProduceAnswer
from odradek.protocol.frames import FrameError, error_only_frame, parse_request_header, response_header, skip_tagged_fields
from odradek.protocol.legacy_produce import rejected_produce_body
from odradek.protocol.request_guard import guard_request
from odradek.security.quotas import CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, user_of
from odradek.security.session import Session
from odradek.server.request_stats import RequestStats

log = logging.getLogger(__name__)

API_VERSIONS_KEY = 18
PRODUCE_KEY = 0
FETCH_KEY = 1
METADATA_KEY = 3
# Not charged to request quotas: authentication, and what brokers send each other.
EXEMPT_FROM_REQUEST_QUOTA = frozenset({17, 36, 27})  # SaslHandshake, SaslAuthenticate, WriteTxnMarkers
_SIZE = struct.Struct(">i")


@cache
def _reader(cls):
    """(body) -> request. kio's decoder after the guard's checks, given a read-only view (kio
    refuses writable buffers, and a frame is one); for Produce our own, which checks as it reads
    and keeps the records writable views of the frame."""
    if is_produce_request(cls):
        read_produce = produce_request_reader(cls)
        return lambda body: read_produce(body, 0)[0]
    read = entity_reader(cls)
    return lambda body: read(memoryview(guard_request(body, cls)).toreadonly(), 0)[0]


@cache
def _writer(cls):
    return entity_writer(cls)


class Dispatcher:
    """Serves one listener: its requests carry the listener's name and the principal their
    connection authenticated as. Before a SASL connection authenticates, only ApiVersions,
    SaslHandshake and SaslAuthenticate are served; anything else closes it."""

    def __init__(self, services: BrokerServices, listener_name: str = "PLAINTEXT",
                 request_stats: RequestStats | None = None) -> None:
        self.services = services
        self.listener_name = listener_name
        self.request_stats = request_stats  # counted and timed when the broker serves metrics

    async def dispatch(self, frame: bytes | bytearray, peer: str, session: Session | None = None):
        """The complete response frame (size prefix included) as one buffer or, for a Fetch, a
        list of chunks to write in order; None when no answer is owed."""
        started = time.perf_counter()
        header = parse_request_header(frame)
        api_key, version, correlation_id = header.api_key, header.api_version, header.correlation_id
        handler = HANDLERS.get(api_key)
        refusal = session.refusal(api_key) if session is not None else None
        if refusal is not None:
            name = handler.name if handler is not None else f"API key {api_key}"
            raise FrameError(f"{refusal} ({name} v{version})")
        if handler is None:
            log.info("Unknown API key %d (version %d) from %s; answered UNSUPPORTED_VERSION", api_key, version, peer)
            return error_only_frame(correlation_id, ErrorCode.unsupported_version)
        if not handler.supports(version):
            if api_key == API_VERSIONS_KEY:
                return _frame(response_header(correlation_id, False), api_versions.unsupported_version_body())
            if api_key == PRODUCE_KEY and 0 <= version < handler.rejected_below:
                try:
                    body = rejected_produce_body(memoryview(frame)[header.body_offset :], version)
                except (ValueError, struct.error) as error:
                    raise FrameError(f"undecodable Produce v{version} request: {error}") from None
                return _frame(response_header(correlation_id, False), body)
            log.info(
                "%s v%d from %s is not supported (we serve v%d-v%d); answered UNSUPPORTED_VERSION",
                handler.name, version, peer, handler.rejected_below, handler.max_version,
            )
            return error_only_frame(correlation_id, ErrorCode.unsupported_version)

        request_type = request_class(api_key, version)
        flexible = request_type.__flexible__
        if flexible:  # header v2: tagged fields follow client_id
            header = header._replace(body_offset=skip_tagged_fields(frame, header.body_offset))
        try:
            request = _reader(request_type)(memoryview(frame)[header.body_offset :])
        except (FrameError, SerialError, ValueError, KeyError, UnicodeDecodeError) as error:
            raise FrameError(f"undecodable {handler.name} v{version} request: {error}") from None

        context = RequestContext(
            self.services, version, response_class(api_key, version), header.client_id, peer,
            listener_name=self.listener_name, image=self.services.metadata.image,
            principal=session.principal if session is not None else ANONYMOUS, session=session,
        )
        quotas = self.services.quotas
        charged = session is not None and quotas.enabled
        stats = self.request_stats
        # ApiVersions answers with header v0 even when flexible: the client cannot know yet.
        flexible_header = flexible and api_key != API_VERSIONS_KEY
        try:
            if not charged and stats is None:
                response = await handler.handle(context, request)
                if response is None:
                    return None
                return _frame_of(correlation_id, flexible_header, response, api_key, version)
            timer = _StepTimer(handler.handle(context, request), started)
            response = await timer
            answer = _frame_of(correlation_id, flexible_header, response, api_key, version) if response is not None else None
            finished = time.perf_counter()
            timer.seconds += finished - timer.resumed
            if stats is not None:
                stats.record(request_type.__name__.removesuffix("Request"), version, timer.seconds, finished - started)
                if api_key == FETCH_KEY:
                    stats.record("FetchConsumer" if _from_consumer(request) else "FetchFollower", version,
                                 timer.seconds, finished - started)
            if charged:
                size = (len(answer) if not isinstance(answer, list) else sum(map(len, answer))) if answer is not None else 0
                throttled = self._charge(context, session, api_key, request, len(frame), response, size, timer.seconds)
                if throttled is not None:
                    answer = _frame_of(correlation_id, flexible_header, throttled, api_key, version)
            return answer
        except CloseConnection as reason:
            raise FrameError(str(reason)) from None
        except Exception:
            # Handlers answer per partition; reaching here is a bug, not the client's fault.
            log.exception("%s v%d from %s failed; answered UNKNOWN_SERVER_ERROR", handler.name, version, peer)
            fallback = error_response(context.response_class, ErrorCode.unknown_server_error)
            return _frame_of(correlation_id, flexible_header, fallback, api_key, version)

    def _charge(self, context: RequestContext, session: Session, api_key: int, request, request_size: int,
                response, response_size: int, seconds: float):
        """Count the request against its client's quotas and set how long its connection waits;
        the response to send instead when throttled (with the throttle time; a Fetch emptied),
        else None."""
        quotas = self.services.quotas
        user, client_id = user_of(session.principal), context.client_id or ""
        from_consumer = _from_consumer(request)
        bandwidth = consumed = 0
        if api_key == PRODUCE_KEY and quotas.produce_enabled:
            bandwidth = quotas.record(PRODUCER_BYTE_RATE, user, client_id, request_size)
        elif api_key == FETCH_KEY and quotas.fetch_enabled and response_size and from_consumer:
            consumed = response_size
            bandwidth = quotas.record(CONSUMER_BYTE_RATE, user, client_id, consumed)
        requested = 0
        if quotas.request_enabled and from_consumer and api_key not in EXEMPT_FROM_REQUEST_QUOTA \
                and not (api_key == PRODUCE_KEY and request.acks == 0):
            requested = quotas.request_time(user, client_id, seconds)
        throttle_ms = max(bandwidth, requested, session.throttle_ms)  # the handler's own: a controller mutation quota
        session.throttle_ms = throttle_ms
        if throttle_ms == 0 or response is None:
            return None
        if type(response) is FetchAnswer:
            if consumed:
                # answered empty and without its session (as Kafka answers a throttled full fetch):
                # the client starts a new session with a full fetch after the throttle time
                quotas.unrecord(CONSUMER_BYTE_RATE, user, client_id, consumed)
                self.services.fetch_sessions.remove(response.session_id)
                response = response._replace(topics=[], session_id=0)
            return response._replace(throttle_ms=throttle_ms)
        if type(response) is ProduceAnswer:
            return response._replace(throttle_ms=throttle_ms)
        if "throttle_time" in response.__dataclass_fields__:
            response = dataclasses.replace(response, throttle_time=timedelta(milliseconds=throttle_ms))
        return response


class _StepTimer:
    """Awaits a coroutine and adds up the time spent in its steps, leaving out the time it waits
    (a parked Fetch, an acks=all Produce): what the event loop spent on the request. `resumed` is
    when it last got the loop back, so the caller can add the time that follows."""

    __slots__ = ("_coroutine", "seconds", "resumed")

    def __init__(self, coroutine, started: float) -> None:
        self._coroutine = coroutine
        self.resumed = started
        self.seconds = 0.0

    def __await__(self):
        coroutine, value, error = self._coroutine, None, None
        while True:
            try:
                waiting_on = coroutine.send(value) if error is None else coroutine.throw(error)
            except StopIteration as done:
                return done.value
            self.seconds += time.perf_counter() - self.resumed
            try:
                value, error = (yield waiting_on), None
            except BaseException as raised:  # noqa: BLE001 - a cancellation goes on into the coroutine
                value, error = None, raised
            self.resumed = time.perf_counter()


def _from_consumer(request) -> bool:
    """Not a follower's Fetch (replica id >= 0): replication has its own throttles."""
    return replica_id_of(request) < 0


def _frame_of(correlation_id: int, flexible_header: bool, response, api_key: int, version: int):
    """The response frame, size prefix included: one buffer, or for a Fetch a list of chunks with
    the records between the encoded fields as regions of the log's files (which the connection
    sends from the page cache), never copied into an encoding buffer."""
    head = response_header(correlation_id, flexible_header)
    if type(response) is ProduceAnswer:
        return _frame(head, response.body(version))
    if api_key == METADATA_KEY:
        return _frame(head, metadata_response_body(response, version))
    if type(response) is FetchAnswer:
        chunks = response.chunks(version)
        size = len(head) + sum(map(len, chunks))
        chunks[0] = _SIZE.pack(size) + head + chunks[0]
        return chunks
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    buffer.write(head)
    _writer(type(response))(buffer, response)
    view = buffer.getbuffer()
    _SIZE.pack_into(view, 0, len(view) - 4)
    return view


def _frame(head: bytes, body: bytes) -> bytes:
    return _SIZE.pack(len(head) + len(body)) + head + body
