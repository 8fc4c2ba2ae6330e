"""One TCP connection to one broker: framing, request headers, correlation ids, ApiVersions.

Requests are written in the order they are made and Kafka answers each connection in request
order, so pending requests wait in a FIFO: the reader task hands each response frame to the
oldest waiter and checks that its correlation id matches. A connection that breaks fails every
waiter with ClientError and is not reused.

Header versions (Kafka's rules): request header v2 for flexible API versions, v1 otherwise;
response header v1 for flexible versions except ApiVersions, which always answers with v0 so that
a client can read it before it knows anything.

Version negotiation: on connect the connection asks ApiVersions (falling back to v0 when the
broker answers UNSUPPORTED_VERSION) and from then on every request is sent at the highest version
the broker, kio and the caller's bound all allow. An API the broker does not serve is a
KafkaError(UNSUPPORTED_VERSION) raised here, before anything is sent.

Not thread-safe: one event loop owns a connection. Concurrent coroutines may share it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import struct
from typing import Any, Mapping

from odradek.client.errors import AuthenticationError, BrokerUnreachableError, ClientError, ErrorCode, KafkaError
from odradek.client.messages import (
    api_name,
    build_request,
    decode_response,
    encode_entity,
    kio_version_range,
)
from odradek.protocol.frames import FrameError, skip_tagged_fields
from odradek.security.client_security import PLAINTEXT, ClientSecurity
from odradek.security.sasl_plain import plain_client_token
from odradek.security.scram import ScramClient

__all__ = ["API_VERSIONS", "BrokerConnection", "DEFAULT_CLIENT_ID"]

log = logging.getLogger("odradek.client")

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
DEFAULT_CLIENT_ID = "odradek-client"
_INT32 = struct.Struct(">i")
_REQUEST_HEADER = struct.Struct(">hhih")
_API_VERSIONS_PREFERRED = 3
MAX_FRAME_BYTES = 1 << 30
_ERROR_ONLY_FRAME_BYTES = 6


def encode_request_frame(api_key: int, version: int, correlation_id: int, client_id: str | None, body: bytes, flexible: bool) -> bytes:
    """Size prefix + request header (v2 when `flexible`, else v1) + body."""
    if client_id is None:
        header = _REQUEST_HEADER.pack(api_key, version, correlation_id, -1)
    else:
        encoded = client_id.encode("utf-8")
        header = _REQUEST_HEADER.pack(api_key, version, correlation_id, len(encoded)) + encoded
    if flexible:
        header += b"\x00"  # no tagged fields
    return _INT32.pack(len(header) + len(body)) + header + body


def response_body_offset(frame, flexible_header: bool) -> tuple[int, int]:
    """(correlation id, offset of the body) of a response frame without its size prefix."""
    if len(frame) < 4:
        raise ClientError(f"response of {len(frame)} bytes is shorter than a response header")
    (correlation_id,) = _INT32.unpack_from(frame, 0)
    offset = 4
    if flexible_header:
        try:
            offset = skip_tagged_fields(frame, offset)
        except FrameError as error:
            raise ClientError(f"unreadable response header: {error}") from None
    return correlation_id, offset


class BrokerConnection:
    """A connection to the broker at `host:port`; `await connect()` before the first request."""

    def __init__(self, host: str, port: int, *, client_id: str | None = DEFAULT_CLIENT_ID, node_id: int | None = None,
                 security: ClientSecurity | None = None) -> None:
        self.security = security or PLAINTEXT
        self.host = host
        self.port = port
        self.node_id = node_id
        self.client_id = client_id
        self.api_versions: dict[int, tuple[int, int]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task | None = None
        self._pending: collections.deque[tuple[int, asyncio.Future]] = collections.deque()
        self._next_correlation_id = 1
        self._closed_reason: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._closed_reason is None

    def __repr__(self) -> str:
        return f"BrokerConnection({self.address}, node_id={self.node_id})"

    async def connect(self, timeout_s: float) -> "BrokerConnection":
        """Open the socket and negotiate versions; BrokerUnreachableError within `timeout_s`."""
        context = self.security.ssl_context
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=context,
                                        server_hostname=self.host if context is not None else None), timeout_s
            )
        except ssl.SSLError as e:
            raise AuthenticationError(f"TLS handshake with {self.address} failed: {e.reason or e}") from None
        except (OSError, asyncio.TimeoutError) as e:
            reason = "timed out" if isinstance(e, asyncio.TimeoutError) else (e.strerror or str(e))
            raise BrokerUnreachableError(f"cannot connect to {self.address}: {reason}") from None
        self._read_task = asyncio.create_task(self._read_loop(), name=f"odradek-client-read-{self.address}")
        try:
            await asyncio.wait_for(self._negotiate_versions(), timeout_s)
        except asyncio.TimeoutError:
            await self.close()
            raise BrokerUnreachableError(f"{self.address} accepted a connection but did not answer ApiVersions within {timeout_s:g} s") from None
        except ClientError as e:
            await self.close()
            raise BrokerUnreachableError(f"{self.address} did not answer ApiVersions: {e}") from None
        if self.security.uses_sasl:
            try:
                await asyncio.wait_for(self._authenticate(), timeout_s)
            except asyncio.TimeoutError:
                await self.close()
                raise BrokerUnreachableError(f"{self.address} did not complete SASL authentication within {timeout_s:g} s") from None
            except ClientError:
                await self.close()
                raise
        return self

    async def _authenticate(self) -> None:
        """SaslHandshake, then the mechanism's SaslAuthenticate exchange (PLAIN or SCRAM)."""
        security = self.security
        mechanism = security.mechanism
        handshake = await self.request(SASL_HANDSHAKE, {"mechanism": mechanism}, max_version=1, min_version=1)
        if handshake.error_code != ErrorCode.none:
            offered = ", ".join(handshake.mechanisms) or "none"
            raise AuthenticationError(f"{self.address} does not offer SASL mechanism {mechanism} (it offers: {offered})")

        async def exchange(token: bytes) -> bytes:
            answer = await self.request(SASL_AUTHENTICATE, {"auth_bytes": token})
            if answer.error_code != ErrorCode.none:
                raise AuthenticationError(f"authentication with {mechanism} at {self.address} failed: "
                                          f"{answer.error_message or ErrorCode(int(answer.error_code)).name}")
            return bytes(answer.auth_bytes)

        if mechanism == "PLAIN":
            await exchange(plain_client_token(security.username, security.password))
            return
        scram = ScramClient(mechanism, security.username, security.password, token=security.token)
        server_first = await exchange(scram.first_message())
        try:
            server_final = await exchange(scram.final_message(server_first))
            scram.verify_final(server_final)
        except ValueError as e:
            raise AuthenticationError(f"authentication with {mechanism} at {self.address} failed: {e}") from None

    async def _negotiate_versions(self) -> None:
        version = _API_VERSIONS_PREFERRED
        values = {"client_software_name": "odradek", "client_software_version": "0"}
        frame = await self._round_trip(API_VERSIONS, version, encode_entity(build_request(API_VERSIONS, version, values)), True)
        _correlation_id, offset = response_body_offset(frame, False)
        (error_code,) = struct.unpack_from(">h", frame, offset)
        if error_code == ErrorCode.unsupported_version:
            # The broker answers in the v0 layout with the versions it does serve.
            version = 0
            frame = await self._round_trip(API_VERSIONS, 0, encode_entity(build_request(API_VERSIONS, 0, {})), False)
            _correlation_id, offset = response_body_offset(frame, False)
        response = decode_response(API_VERSIONS, version, frame, offset)
        if response.error_code != ErrorCode.none:
            raise KafkaError(ErrorCode(int(response.error_code)), f"ApiVersions failed at {self.address}")
        self.api_versions = {int(a.api_key): (int(a.min_version), int(a.max_version)) for a in response.api_keys}

    def version_for(self, api_key: int, max_version: int | None = None, min_version: int | None = None) -> int:
        """The highest version the broker, kio and the caller all allow; UNSUPPORTED_VERSION if none."""
        name = api_name(api_key)
        broker = self.api_versions.get(api_key)
        kio = kio_version_range(api_key)
        if broker is None:
            raise KafkaError(ErrorCode.unsupported_version, f"the broker at {self.address} does not support {name} (API key {api_key})")
        if kio is None:
            raise KafkaError(ErrorCode.unsupported_version, f"this client has no schema for {name} (API key {api_key})")
        high = min(broker[1], kio[1], max_version if max_version is not None else kio[1])
        low = max(broker[0], kio[0], min_version if min_version is not None else kio[0])
        if high < low:
            raise KafkaError(
                ErrorCode.unsupported_version,
                f"no common version of {name}: the broker at {self.address} serves v{broker[0]}-v{broker[1]}, this client v{max(kio[0], min_version or 0)}-v{min(kio[1], max_version if max_version is not None else kio[1])}",
            )
        return high

    async def request(
        self,
        api_key: int,
        values: Mapping[str, Any],
        *,
        max_version: int | None = None,
        min_version: int | None = None,
        timeout_s: float | None = None,
        expect_response: bool = True,
    ) -> Any:
        """Send `values` as the negotiated version of `api_key`; the decoded response entity.

        `response.__version__` says which version was used. With expect_response=False (produce
        with acks=0) nothing is awaited and None is returned.
        """
        version = self.version_for(api_key, max_version, min_version)
        request = build_request(api_key, version, values)
        return await self.send(request, timeout_s=timeout_s, expect_response=expect_response)

    async def send(self, request: Any, *, timeout_s: float | None = None, expect_response: bool = True) -> Any:
        """Send a kio request entity as is; the decoded response entity."""
        api_key = int(request.__api_key__)
        version = int(request.__version__)
        flexible = bool(request.__flexible__)
        body = encode_entity(request)
        if not expect_response:
            self._write(api_key, version, body, flexible)
            await self._drain()
            return None
        awaitable = self._round_trip(api_key, version, body, flexible)
        try:
            frame = await (asyncio.wait_for(awaitable, timeout_s) if timeout_s is not None else awaitable)
        except asyncio.TimeoutError:
            raise ClientError(f"{api_name(api_key)} v{version} to {self.address} got no answer within {timeout_s:g} s") from None
        if len(frame) == _ERROR_ONLY_FRAME_BYTES:
            # The broker's answer to a request it could not handle at all: correlation id + error code.
            (code,) = struct.unpack_from(">h", frame, 4)
            error = ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.unknown_server_error
            raise KafkaError(error, f"{api_name(api_key)} v{version} to {self.address} failed: {error.name.upper()}")
        try:
            _correlation_id, offset = response_body_offset(frame, flexible and api_key != API_VERSIONS)
            return decode_response(api_key, version, frame, offset)
        except Exception as e:
            raise ClientError(f"cannot decode the {api_name(api_key)} v{version} answer from {self.address}: {e}") from e

    def _write(self, api_key: int, version: int, body: bytes, flexible: bool) -> int:
        if self._writer is None or self._closed_reason is not None:
            raise ClientError(f"connection to {self.address} is closed: {self._closed_reason or 'not connected'}")
        correlation_id = self._next_correlation_id
        self._next_correlation_id = (self._next_correlation_id + 1) & 0x7FFFFFFF
        self._writer.write(encode_request_frame(api_key, version, correlation_id, self.client_id, body, flexible))
        return correlation_id

    async def _drain(self) -> None:
        assert self._writer is not None
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as e:
            self._fail_all(f"write failed: {e}")
            raise ClientError(f"connection to {self.address} broke: {e}") from None

    async def _round_trip(self, api_key: int, version: int, body: bytes, flexible: bool) -> bytes:
        correlation_id = self._write(api_key, version, body, flexible)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((correlation_id, future))
        await self._drain()
        return await future

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reason = "closed by the broker"
        try:
            while True:
                size_bytes = await self._reader.readexactly(4)
                (size,) = _INT32.unpack(size_bytes)
                if size < 4 or size > MAX_FRAME_BYTES:
                    reason = f"response frame of {size} bytes is out of bounds"
                    break
                frame = await self._reader.readexactly(size)
                (correlation_id,) = _INT32.unpack_from(frame, 0)
                if not self._pending:
                    reason = f"response with correlation id {correlation_id} answered no request"
                    break
                expected, future = self._pending.popleft()
                if correlation_id != expected:
                    reason = f"response with correlation id {correlation_id} arrived where {expected} was due"
                    if not future.done():
                        future.set_exception(ClientError(f"{self.address}: {reason}"))
                    break
                if not future.done():
                    future.set_result(frame)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            reason = "closed by the broker" if isinstance(e, asyncio.IncompleteReadError) else str(e)
        except asyncio.CancelledError:
            reason = "closed by the client"
            self._fail_all(reason)
            raise
        self._fail_all(reason)

    def _fail_all(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
        while self._pending:
            _correlation_id, future = self._pending.popleft()
            if not future.done():
                future.set_exception(ClientError(f"connection to {self.address} {reason}"))
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        if self._read_task is not None and not self._read_task.done():
            self._read_task.cancel()
            try:
                await self._read_task
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_all("closed by the client")
        if self._writer is not None:
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass


def supports(connection: BrokerConnection, api_key: int) -> bool:
    """Whether the broker and kio share a version of `api_key`."""
    try:
        connection.version_for(api_key)
    except KafkaError:
        return False
    return True
