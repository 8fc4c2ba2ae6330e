"""Frame in, frame out: decode the header and body with kio, call the handler, encode the answer.

Answers that cannot come from a handler are made here: an ApiVersions request above our range
(the v0-layout UNSUPPORTED_VERSION answer), Produce v0-v2 (advertised, refused), and requests for
an API or version we do not serve. A body that does not decode raises FrameError, which closes
the connection.
"""

from __future__ import annotations

import io
import logging
import struct
from functools import cache

from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from odradek.handlers import api_versions
from odradek.handlers.context import ANONYMOUS, BrokerServices, CloseConnection, RequestContext
from odradek.handlers.registry import HANDLERS
from odradek.protocol.schemas import request_class, response_class
from odradek.handlers.responses import error_response
from odradek.protocol.errors import ErrorCode
from odradek.protocol.frames import FrameError, error_only_frame, parse_request_header, response_header
from odradek.protocol.legacy_produce import rejected_produce_body
from odradek.protocol.request_guard import guard_request
from odradek.security.session import Session

log = logging.getLogger(__name__)

API_VERSIONS_KEY = 18
PRODUCE_KEY = 0
_SIZE = struct.Struct(">i")


@cache
def _reader(cls):
    return entity_reader(cls)


@cache
def _writer(cls):
    return entity_writer(cls)


class Dispatcher:
    """Serves one listener: its requests carry the listener's name and the principal their
    connection authenticated as. Before a SASL connection authenticates, only ApiVersions,
    SaslHandshake and SaslAuthenticate are served; anything else closes it."""

    def __init__(self, services: BrokerServices, listener_name: str = "PLAINTEXT") -> None:
        self.services = services
        self.listener_name = listener_name

    async def dispatch(self, frame: bytes, peer: str, session: Session | None = None):
        """The complete response frame (size prefix included), or None when none is owed."""
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
        header = parse_request_header(frame, flexible)
        try:
            body = guard_request(memoryview(frame)[header.body_offset :], request_type)
            request, _size = _reader(request_type)(body, 0)
        except (FrameError, SerialError, ValueError, KeyError, UnicodeDecodeError) as error:
            raise FrameError(f"undecodable {handler.name} v{version} request: {error}") from None

        context = RequestContext(
            self.services, version, response_class(api_key, version), header.client_id, peer,
            listener_name=self.listener_name, image=self.services.metadata.image,
            principal=session.principal if session is not None else ANONYMOUS, session=session,
        )
        try:
            response = await handler.handle(context, request)
            if response is None:
                return None
            # ApiVersions answers with header v0 even when flexible: the client cannot know yet.
            head = response_header(correlation_id, flexible and api_key != API_VERSIONS_KEY)
            buffer = io.BytesIO()
            buffer.write(b"\0\0\0\0")
            buffer.write(head)
            _writer(type(response))(buffer, response)
        except CloseConnection as reason:
            raise FrameError(str(reason)) from None
        except Exception:
            # Handlers answer per partition; reaching here is a bug, not the client's fault.
            log.exception("%s v%d from %s failed; answered UNKNOWN_SERVER_ERROR", handler.name, version, peer)
            buffer = io.BytesIO()
            buffer.write(b"\0\0\0\0")
            buffer.write(response_header(correlation_id, flexible and api_key != API_VERSIONS_KEY))
            fallback = error_response(context.response_class, ErrorCode.unknown_server_error)
            _writer(type(fallback))(buffer, fallback)
        view = buffer.getbuffer()
        _SIZE.pack_into(view, 0, len(view) - 4)
        return view


def _frame(head: bytes, body: bytes) -> bytes:
    return _SIZE.pack(len(head) + len(body)) + head + body
