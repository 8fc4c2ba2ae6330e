"""A tiny raw-socket Kafka client for tests that must send what no real client would.

`WireClient.request(api_key, version, request)` frames a kio request entity (request header v2
for flexible versions, v1 otherwise), sends it and decodes the answer (response header v0 for
ApiVersions and non-flexible versions, v1 otherwise). `send_raw` / `recv_frame` / `is_closed`
work below that, on bytes, for frames that are broken on purpose. One request at a time; not
thread-safe.
"""

from __future__ import annotations

import importlib
import io
import socket
import struct

from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.primitive import i16, i32

API_VERSIONS_KEY = 18
DEFAULT_TIMEOUT_S = 10.0
_SIZE = struct.Struct(">i")


def response_class_for(request_class: type) -> type:
    """The response entity next to a kio request entity (`...v9.request` -> `...v9.response`)."""
    module = importlib.import_module(request_class.__module__.rsplit(".", 1)[0] + ".response")
    for value in vars(module).values():
        if getattr(value, "__type__", None) == EntityType.response and value.__module__ == module.__name__:
            return value
    raise LookupError(f"no response entity in {module.__name__}")


def encode_request(request, correlation_id: int, client_id: str | None = "odradek-wire", version: int | None = None) -> bytes:
    """A complete frame (size prefix included) for a kio request entity."""
    api_key = int(request.__api_key__)
    version = int(request.__version__) if version is None else version
    header_class = RequestHeaderV2 if request.__flexible__ else RequestHeaderV1
    buffer = io.BytesIO()
    entity_writer(header_class)(
        buffer,
        header_class(
            request_api_key=i16(api_key),
            request_api_version=i16(version),
            correlation_id=i32(correlation_id),
            client_id=client_id,
        ),
    )
    entity_writer(type(request))(buffer, request)
    body = buffer.getvalue()
    return _SIZE.pack(len(body)) + body


def raw_request(api_key: int, version: int, correlation_id: int, body: bytes, client_id: str = "odradek-wire") -> bytes:
    """A complete frame with request header v1 and an arbitrary body (for versions kio lacks)."""
    encoded_client_id = client_id.encode()
    header = struct.pack(">hhih", api_key, version, correlation_id, len(encoded_client_id)) + encoded_client_id
    return _SIZE.pack(len(header) + len(body)) + header + body


class WireClient:
    def __init__(self, bootstrap_servers: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        host, port = bootstrap_servers.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.timeout_s = timeout_s
        self._next_correlation_id = 1

    # --- bytes -----------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv_exactly(self, size: int) -> bytes:
        chunks = []
        remaining = size
        while remaining:
            chunk = self.sock.recv(remaining)
            if not chunk:
                raise ConnectionError(f"connection closed with {remaining} of {size} bytes unread")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def recv_frame(self) -> bytes:
        """The next response frame without its size prefix."""
        (size,) = _SIZE.unpack(self._recv_exactly(4))
        return self._recv_exactly(size)

    def is_closed(self, timeout_s: float | None = None) -> bool:
        """True once the broker has closed the connection (EOF or reset) within the timeout.

        Data that arrives instead means the connection is open; it is consumed.
        """
        self.sock.settimeout(self.timeout_s if timeout_s is None else timeout_s)
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout_s)

    # --- requests ----------------------------------------------------------------------------

    def next_correlation_id(self) -> int:
        correlation_id = self._next_correlation_id
        self._next_correlation_id += 1
        return correlation_id

    def request(self, api_key: int, version: int, request):
        """Send a kio request entity and return the decoded response entity."""
        if int(request.__api_key__) != api_key or int(request.__version__) != version:
            raise ValueError(
                f"request entity is key {request.__api_key__} v{request.__version__}, not key {api_key} v{version}"
            )
        correlation_id = self.next_correlation_id()
        self.send_raw(encode_request(request, correlation_id))
        frame = self.recv_frame()
        flexible_header = request.__flexible__ and api_key != API_VERSIONS_KEY
        header_class = ResponseHeaderV1 if flexible_header else ResponseHeaderV0
        header, offset = entity_reader(header_class)(frame, 0)
        if header.correlation_id != correlation_id:
            raise AssertionError(f"correlation id {header.correlation_id} answered request {correlation_id}")
        response, _size = entity_reader(response_class_for(type(request)))(frame, offset)
        return response

    def request_raw(self, api_key: int, version: int, body: bytes) -> tuple[int, bytes]:
        """Send header v1 + `body`; return (correlation id, response body after a v0 header)."""
        correlation_id = self.next_correlation_id()
        self.send_raw(raw_request(api_key, version, correlation_id, body))
        frame = self.recv_frame()
        (answered,) = struct.unpack_from(">i", frame, 0)
        if answered != correlation_id:
            raise AssertionError(f"correlation id {answered} answered request {correlation_id}")
        return answered, frame[4:]

    def find_coordinator(self, group: str) -> None:
        """FindCoordinator for a group, as every client asks before a group request (on a fresh
        broker it creates __consumer_offsets); fails unless this broker is the coordinator."""
        from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest
        from kio.static.primitive import i8

        found = self.request(10, 3, FindCoordinatorRequest(key=group, key_type=i8(0)))
        if found.error_code != 0:
            raise AssertionError(f"FindCoordinator for {group!r} answered {found}")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "WireClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
